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
  <!-- the provider's console is a pty: say so -->
  <xsl:template match="/domain/devices/console[not(@type)]">
    <xsl:copy>
      <xsl:attribute name="type">pty</xsl:attribute>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
