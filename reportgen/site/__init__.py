"""The site phase: a run's typed record, what each page shows, which pages there are, the
distances between a study's styles, the data archive, what the site weighs, Jinja2 rendering and
the writer that swaps a staged site in at once.

May import the stage results, the manifest's model and the shared vocabulary; never the
network, the figures' plotting libraries or the executors.
"""
