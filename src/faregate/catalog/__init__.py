"""The operator's catalog: models with prices and limits, upstreams and which models they serve."""
