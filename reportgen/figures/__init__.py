"""The figures stage: a run's folder of images and figures drawn from its stage results, in
processes of their own, without torch.

:mod:`~reportgen.figures.draw` is the stage; :mod:`~reportgen.figures.raster` draws with numpy
and Pillow, :mod:`~reportgen.figures.plots` with matplotlib and seaborn.
"""

import matplotlib

# No display.  Set before anything imports pyplot (seaborn does): every module of the package
# is imported after this one.
matplotlib.use("Agg")
