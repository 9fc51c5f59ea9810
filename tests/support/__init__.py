"""Helpers the test tiers share: API Gateway events, the e2e HTTP client, generated media, tus clients."""
