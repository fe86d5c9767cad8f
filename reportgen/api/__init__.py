"""reportgen's Python API, the library's front door (``import reportgen``): the seed notebook's
analysis on the stages and the cache that ``reportgen build`` uses.

    run = reportgen.transfer("content.jpg", "style.jpg", size=256)
    study = reportgen.Study("manifest.yaml"); run = study["pair-id"]
    run.features("content")["conv4_2"]; run.grams("style")["conv1_1"]; run.show_top_pairs("conv1_1")
    study.build("site")
"""

from reportgen.api.run import Run
from reportgen.api.study import Study, transfer

__all__ = ["Run", "Study", "transfer"]
