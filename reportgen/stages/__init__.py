"""The stages of a run and phase one of a build, without torch: typed stage results, their
arrays, the cache of each stage and its keys, the work handed to executors, and the pipeline
that gathers every run's results from the cache or by computing them.

May import the manifest's model and the shared vocabulary; the executors and the network are
reached only through the :class:`~reportgen.stages.jobs.Devices` and
:class:`~reportgen.stages.jobs.Figures` protocols.
"""
