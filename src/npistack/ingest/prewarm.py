"""Imported by the fork server of the transform's worker processes (``load._Runner``): builds the
default lookup tables (ZIP centroids, the bundled NUCC taxonomy) once, in the server, so that every
worker forked from it starts with them instead of building them before its first block (0.13 s
each, on the critical path of a weekly apply). A load with its own NUCC file builds that one in each
worker (``load._warm``)."""

from npistack.normalize.geo import zip_table
from npistack.nppes.taxonomy import load_nucc

zip_table()
load_nucc(None)
