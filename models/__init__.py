"""Models beyond VGGish, one package each (``models.yamnet``, ``models.clap``, ...).

Each package provides a bundle (``audiobeam.bundle.ModelBundle``); ``audiobeam.registry``
maps ``--model NAME`` to it. VGGish, the first model, lives in the top-level ``vggish/``.
"""
