"""The sections of params.yaml as typed models, grouped by the layer that reads them (corpus, model,
ensemble, tagging), on the shared base and value types of `base`. healthner.config assembles them
into the one Params object and loads params.yaml. Imports nothing else from healthner, so every
layer may import it (like healthner.config and healthner.errors)."""
