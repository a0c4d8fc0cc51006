"""The certifying authority's tools: its SM2 key, signed evidence bundles and signed waivers.

ATS-1.0 says nothing of them; they sit above the reports (they read what the writers wrote)
and below the command line. Nothing in the harness imports this package.
"""
