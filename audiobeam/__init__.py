"""audiobeam's model-agnostic core: decoding, resampling, streaming, assets, errors.

Nothing here knows a particular model. Each model is a package (``vggish/``,
``models/<name>/``) that provides a bundle (``audiobeam.bundle``); the registry
(``audiobeam.registry``) maps ``--model NAME`` to it. Importing this package is light
(numpy only).
"""
