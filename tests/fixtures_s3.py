"""Fixtures that run the S3 API over HTTP on loopback (moto server)."""
