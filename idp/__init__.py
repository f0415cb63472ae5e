"""A reference identity platform: stands in for the province's 统一身份认证 (OpenID Connect)."""
