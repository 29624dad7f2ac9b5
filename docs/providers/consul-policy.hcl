# Example ACL policy for the Consul membership provider (provider-consul).
#
# Replace "my-cluster" with the provider's `service` (or `cluster`) setting.
# Create it and a token with:
#   consul acl policy create -name cluster-membership -rules @consul-policy.hcl
#   consul acl token create -description "cluster membership" -policy-name cluster-membership
# and hand the token to the provider via the `token` / `token_file` setting or
# CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE.

# Register and deregister our own instances, pass their TTL checks
# (PUT /v1/agent/service/register, /v1/agent/service/deregister/:id,
# /v1/agent/check/pass/:id). Write implies read of the service's health
# (GET /v1/health/service/my-cluster).
service "my-cluster" {
  policy = "write"
}

# Health results are filtered by node:read: without it the watch would see
# no instance at all.
node_prefix "" {
  policy = "read"
}

# The connectivity check at acceptance (R1.4) reads GET /v1/agent/self.
# Narrow it to the agents your nodes talk to with `agent "<node name>"`.
agent_prefix "" {
  policy = "read"
}
