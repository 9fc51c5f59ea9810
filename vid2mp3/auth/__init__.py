"""Accounts and access: validation, argon2id password hashing, JWTs, login throttling, the authorizer policy.

One module per concern, each port beside its adapters (PostgreSQL and an in-memory fake):

- `validation`: request bodies -> normalised credentials, with field-level messages
- `passwords`: argon2id hashing (OWASP parameters), verification, rehash detection
- `tokens`: HS256 JWTs with a `kid` header so the signing key can be rotated
- `users`: the UserRepository port and its adapters
- `throttle`: brute-force login throttling per account and per source IP, and its stores
- `service`: register / login / me, taking every dependency as a parameter
- `policy`: the TOKEN authorizer's decision: Bearer parsing, IAM policy, context (no database)
"""
