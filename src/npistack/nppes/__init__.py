"""Everything about CMS's NPPES formats: layouts, the NPI check digit, NUCC taxonomy, readers, synth."""
