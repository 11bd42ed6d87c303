"""Record matching: tie CRM and spreadsheet rows to NPIs, with a calibrated confidence.

For each record, candidates come from its identity paths, strongest first:

1. **NPI**: valid (check digit), in the registry; the rest of the record is still compared, so an
   NPI that belongs to someone else does not match silently.
2. **License number + state**, against the licenses of every NPPES taxonomy slot, compared
   without punctuation, spaces, leading zeros or a state prefix ("CA-A012345" = "A12345" in CA).
3. **Name**: individuals by last name key with the first name or any of its nicknames (also first
   and last swapped, hyphenated parts, and former/other names, which the name index holds);
   organizations by legal name, other names (DBA, former) and parent, without legal form words.
   When that finds no one whose name agrees, typos are tried: last names within one or two edits
   (from the registry's vocabulary of names), any first name with the last name (then compared
   with typos), and people with the first name (or organizations with the first word) at the
   record's ZIP or city.

Every candidate is scored field by field (``services.match.score``: Fellegi-Sunter weights from
registry name frequencies). The confidence of candidate *c* is the posterior probability that the
record is *c*, against every other candidate and against "someone not in the registry":
``exp(S_c) / (K + sum_j exp(S_j))`` with ``K = N (1 - p) / p``, where *N* is the number of
providers of the record's kind and *p* the prior that the record's provider is in the registry
(0.9; 0.99 when the record carries an NPI the registry has). ``CALIBRATION`` then maps that
probability through a logistic curve fitted on the evaluation (``services.match.eval``).

Outcome: **matched** when the best confidence reaches the threshold (0.9 by default), **ambiguous**
when candidates remain likely but none is sure (best >= 0.2 or together >= 0.5), else
**no_match**. A deactivated NPI is matched as such: ``provider_status`` says "deactivated" with its
date, compared on its last record before deactivation when the store's history has one.

The modules: ``engine`` (the :class:`Matcher`: candidates and outcome), ``input`` (a record as given
and parsed), ``score`` (the field weights), ``result`` (:class:`MatchResult`, the calibration),
``vocab`` (typo search over the registry's names), ``specialty`` (specialty words to taxonomy codes)
and ``eval`` (the labeled evaluation and the calibration fit; ``npistack match-eval``).
"""

from npistack.services.match.engine import Matcher, match_records
from npistack.services.match.input import FIELDS, MatchInput, MatchInputError
from npistack.services.match.result import Candidate, MatchResult

__all__ = ["FIELDS", "Candidate", "MatchInput", "MatchInputError", "MatchResult", "Matcher", "match_records"]
