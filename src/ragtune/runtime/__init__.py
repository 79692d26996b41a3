"""The runtime: one request through route -> retrieve -> select -> prompt -> generate ->
validate (:mod:`ragtune.runtime.pipeline`)."""
