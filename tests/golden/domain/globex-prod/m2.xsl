<?xml version='1.0' encoding='UTF-8'?>
<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">
  <xsl:output method="xml" indent="yes" encoding="UTF-8"/>
  <xsl:strip-space elements="*"/>
  <xsl:template match="@*|node()">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>
  <!-- cpu weight and cap -->
  <xsl:template match="/domain/vcpu">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
    <cputune>
      <shares>2048</shares>
    </cputune>
  </xsl:template>
  <!-- the provider's console is a pty: say so, and log it to a file on the hypervisor -->
  <xsl:template match="/domain/devices/console[target/@type='serial' or not(target)]">
    <xsl:copy>
      <xsl:if test="not(@type)">
        <xsl:attribute name="type">pty</xsl:attribute>
      </xsl:if>
      <xsl:apply-templates select="@*|node()[not(self::log)]"/>
      <log file="/var/log/libvirt/qemu/g2-globex-prod-m2-console.log" append="off"/>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
