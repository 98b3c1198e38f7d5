"""Identity and authorization: tenants, principals, credentials, role bindings, the authorizer, audit.

Sits below `core` and `api`: it may import types, errors, store and wire, never core/api/server.
`model` holds the records and the role → action table, `directory` stores them, `tokens` and `apikeys`
make and check credentials, `authn` turns a credential into a `Caller`, `authz` decides (built-in RBAC or
an external IAM), `bootstrap` writes the first system-admin credential, `audit` records decisions.
"""
