"""Everything that needs torch: weights, the VGG19 feature extractor, transfer and analysis.

Nothing outside this package imports torch, so validating a manifest or rendering a cached site
never pays for loading it.
"""
