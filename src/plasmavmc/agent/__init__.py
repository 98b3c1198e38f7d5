"""The node agent process: `plasmavmc-agent` (AgentService on port 8082, heartbeats, VM supervision)."""
