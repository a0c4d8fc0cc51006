"""What every test helper that needs a node uses: free ports, secrets, one readiness wait, and
nodes started from a plan of ``conformance.topology`` (``support.nodes``)."""
