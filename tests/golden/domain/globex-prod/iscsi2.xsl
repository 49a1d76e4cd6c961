<?xml version='1.0' encoding='UTF-8'?>
<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">
  <xsl:output method="xml" indent="yes" encoding="UTF-8"/>
  <xsl:strip-space elements="*"/>
  <xsl:template match="@*|node()">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>
  <!-- data disks of a storage server: raw, cache=none, shareable -->
  <xsl:template match="/domain/devices/disk[target/@dev='vdb']">
    <xsl:copy>
      <xsl:apply-templates select="@*"/>
      <driver name="qemu" type="raw" cache="none" io="native"/>
      <xsl:apply-templates select="node()[not(self::driver or self::shareable)]"/>
      <shareable/>
    </xsl:copy>
  </xsl:template>
  <!-- the provider's console is a pty: say so, and log it to a file on the hypervisor -->
  <xsl:template match="/domain/devices/console[target/@type='serial' or not(target)]">
    <xsl:copy>
      <xsl:if test="not(@type)">
        <xsl:attribute name="type">pty</xsl:attribute>
      </xsl:if>
      <xsl:apply-templates select="@*|node()[not(self::log)]"/>
      <log file="/var/log/libvirt/qemu/g2-globex-prod-iscsi2-console.log" append="off"/>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
