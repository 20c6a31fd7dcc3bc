"""The fault campaign (issue 74): a cluster of hosts made of network namespaces on one
machine, faults from a seeded schedule, and a checker that fails loudly.
``scripts/faults`` runs :func:`benchmarks.faults.campaign.main`."""
