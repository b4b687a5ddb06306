"""Build, inspect, verify and measure the service's images (CI and full)."""
