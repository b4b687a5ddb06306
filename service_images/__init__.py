"""Build, inspect, verify and measure the python-ai-service images (CI and full)."""
