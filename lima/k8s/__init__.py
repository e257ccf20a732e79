"""Kubernetes-facing pieces shared by the operator and the chart: pools and the RayJob builder."""
