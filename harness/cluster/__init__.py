"""Clusters over SSH: inventories of hosts, the lab's own hosts in network namespaces, facts."""
