"""lima-run's Kubernetes operator (kopf): one KubeRay RayJob per stage of an Experiment.

Run it with `kopf run --standalone -m lima_operator.handlers` (what the chart's Deployment does).
The package is not called `operator`: that would shadow Python's standard-library module.
"""
