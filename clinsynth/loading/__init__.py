"""The loader's building blocks (reading, time parsing, value cleaning, reshaping, window).

``clinsynth.loader.load_cohort`` strings them together; each module has one job so a rule can be
read, tested and changed on its own.
"""
