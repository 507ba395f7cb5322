"""The lab's stand-in for Entra ID: a token service speaking Entra's wire protocol (OIDC
discovery, JWKS, client credentials, managed identity endpoints) with real RSA keys, so the
real clients (azure-identity, AzCopy) acquire real signed tokens on machines that cannot reach
Azure."""
