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
      <driver name="qemu" type="raw" cache="none"/>
      <xsl:apply-templates select="node()[not(self::driver or self::shareable)]"/>
      <shareable/>
    </xsl:copy>
  </xsl:template>
  <!-- Xen (libxl): no virtio channel, rng or NIC model; xvd disks -->
  <xsl:template match="/domain/devices/channel[target/@type='virtio']"/>
  <xsl:template match="/domain/devices/rng"/>
  <xsl:template match="/domain/devices/interface/model[@type='virtio']"/>
  <xsl:template match="/domain/devices/disk/target[@bus='virtio']">
    <target dev="x{@dev}" bus="xen">
      <xsl:apply-templates select="@*[not(name()='dev' or name()='bus')]"/>
    </target>
  </xsl:template>
  <!-- the provider's console is a pty: say so -->
  <xsl:template match="/domain/devices/console[not(@type)]">
    <xsl:copy>
      <xsl:attribute name="type">pty</xsl:attribute>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
