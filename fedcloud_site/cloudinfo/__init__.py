"""Cloud information provider: GLUE2 LDIF for the BDII and GLUE 2.1 JSON."""
