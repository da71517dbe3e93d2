"""Personal data in a table, found by column name and by content, and the privacy items of the
audit checklist (core layer).

Content patterns run on a seeded sample of each text column's distinct values (at most
:data:`SAMPLE_VALUES`), so a million-row column costs one ``value_counts``. Evidence never shows a
raw value: examples are masked (``j***@e***.com``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..columns import parses_as_dates
from .checks import RULES, Facts, Item, _pct
from .tables import is_numeric, single_feature_scores

SAMPLE_VALUES = 2000
MATCH_SHARE = 0.5      # a column whose values match a pattern this often holds that kind of data
CONTAINS_SHARE = 0.01  # free text mentioning e-mails/phones this often may leak them

# Direct identifiers recognised by content: (kind, full-match regex). The most specific first: on a
# tie the first wins (an SSN or an IP address also looks like a phone number).
PATTERNS: dict[str, str] = {
    "e-mail address": r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "US social security number": r"\d{3}-\d{2}-\d{4}",
    "IP address": r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)",
    "IBAN": r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
    "payment card number": r"(?:\d[ -]?){12,18}\d",
    "phone number": r"(?:\+|00)?\(?\d{1,4}\)?(?:[ .\-/]?\(?\d{1,5}\)?){2,5}",
}
CONTAINS = {"e-mail address": PATTERNS["e-mail address"],
            "phone number": r"\+\d[\d ().-]{7,}\d|\(\d{2,4}\)[ -]?\d{3}[ -]?\d{3,4}"}
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")

# Column-name tokens: (kind, tokens that mark it, is it a direct identifier).
NAME_RULES: list[tuple[str, set[str], bool]] = [
    ("e-mail address", {"email", "mail", "emailaddress"}, True),
    ("phone number", {"phone", "telephone", "tel", "mobile", "cellphone", "fax", "msisdn"}, True),
    ("person name", {"firstname", "lastname", "surname", "fullname", "givenname", "familyname",
                     "middlename", "maidenname", "forename"}, True),
    ("IP address", {"ip", "ipaddress", "ipv4", "ipv6"}, True),
    ("postal address", {"address", "street", "addr", "zip", "zipcode", "postcode", "postalcode"}, True),
    ("national id", {"ssn", "passport", "nationalid", "taxid", "nino", "socialsecurity",
                     "driverslicense", "licence", "license"}, True),
    ("birth date", {"dob", "birthdate", "dateofbirth", "birthday", "birth"}, True),
    ("payment data", {"iban", "creditcard", "cardnumber", "ccnumber", "accountnumber", "bic"}, True),
    ("geolocation", {"lat", "lon", "lng", "latitude", "longitude", "gps", "geolocation"}, False),
    ("identifier", {"id", "uuid", "guid", "userid", "customerid", "accountid", "patientid",
                    "clientid", "memberid"}, False),
]
_PERSON_HINTS = {"first", "last", "full", "given", "family", "middle", "customer", "client", "patient",
                 "user", "person", "contact", "employee", "member", "maiden", "sur", "owner"}


@dataclass
class Finding:
    """One column that looks like personal data."""

    column: str
    kind: str
    basis: str        # "content", "name" or "content and name"
    direct: bool      # a direct identifier (fail) or a quasi-identifier / free text (warn)
    share: float | None
    example: str

    def as_row(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "found by": self.basis,
                "direct identifier": "yes" if self.direct else "no",
                "matching share": self.share, "example (masked)": self.example}


def tokens(name: str) -> list[str]:
    """``"customerEmail_2"`` -> ``["customer", "email"]``; also the joined form ``customeremail``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    parts = [p for p in re.split(r"[^A-Za-z]+", spaced.lower()) if p]
    return parts + (["".join(parts)] if len(parts) > 1 else [])


def by_name(column: str) -> tuple[str, bool] | None:
    """The kind of personal data a column name suggests, and whether it is a direct identifier."""
    toks = tokens(column)
    for kind, marks, direct in NAME_RULES:
        if marks & set(toks):
            return kind, direct
    if "name" in toks and (len(toks) == 1 or _PERSON_HINTS & set(toks)):
        return "person name", True
    return None


def mask(value: Any) -> str:
    """A masked example that shows the shape of a value, not the value."""
    text = str(value)
    if "@" in text:
        user, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{user[:1]}***@{domain[:1]}***.{tld}"
    digits = sum(ch.isdigit() for ch in text)
    if digits >= 6:
        return re.sub(r"\d", "#", text[:-2]) + text[-2:]
    return (text[:2] + "***") if len(text) > 3 else "***"


def luhn_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def _match_share(values: pd.Series, weights: np.ndarray, kind: str) -> float:
    hits = values.str.fullmatch(PATTERNS[kind]).fillna(False).to_numpy(dtype=bool)
    if kind == "phone number":
        ndig = values.str.count(r"\d").to_numpy()
        hits &= (ndig >= 7) & (ndig <= 15) & ~values.str.fullmatch(_DATE.pattern).fillna(False).to_numpy(
            dtype=bool) & ~values.str.fullmatch(r"\d+(\.\d+)?").fillna(False).to_numpy(dtype=bool)
        # digits with separators are a phone number only when they look like one: an international
        # prefix or an area code in brackets, or three groups or more with 9 digits at least (a
        # case or parcel number such as 17-000003 is two groups)
        groups = values.str.count(r"\d+").to_numpy()
        marked = values.str.match(r"\s*(\+|00|\()").fillna(False).to_numpy(dtype=bool)
        hits &= marked | ((groups >= 3) & (ndig >= 9))
    elif kind == "payment card number":
        hits &= np.array([luhn_ok(v) for v in values], dtype=bool) if hits.any() else hits
    return float((weights * hits).sum() / weights.sum()) if weights.sum() else 0.0


def scan_column(name: str, counts: pd.Series, seed: int = 0) -> list[Finding]:
    """Look for personal data in one text column, given its ``value_counts()``.

    Parameters
    ----------
    counts : pandas.Series
        Distinct values (index) and how often each occurs.
    """
    found: list[Finding] = []
    named = by_name(name)
    if len(counts) == 0:
        return [Finding(name, named[0], "name", named[1], None, "")] if named else []
    if len(counts) > SAMPLE_VALUES:
        counts = counts.sample(SAMPLE_VALUES, weights=counts.to_numpy(dtype=float), random_state=seed)
    values = pd.Series(counts.index.astype(str), dtype=object).str.strip()
    weights = counts.to_numpy(dtype=float)
    best: tuple[str, float] | None = None
    for kind in PATTERNS:
        share = _match_share(values, weights, kind)
        if share >= MATCH_SHARE and (best is None or share > best[1]):
            best = (kind, share)
    if best:
        kind, share = best
        example = mask(values[values.str.fullmatch(PATTERNS[kind]).fillna(False)].iloc[0])
        basis = "content and name" if named and named[0] == kind else "content"
        found.append(Finding(name, kind, basis, True, round(share, 4), example))
    elif named:
        found.append(Finding(name, named[0], "name", named[1], None, mask(values.iloc[0])))
    if not best:
        lengths = values.str.len().to_numpy(dtype=float)
        words = values.str.count(r"\s+").to_numpy(dtype=float) + 1
        mean_len = float((lengths * weights).sum() / weights.sum())
        if mean_len >= 30 and float((words * weights).sum() / weights.sum()) >= 4:
            for kind, pattern in CONTAINS.items():
                hits = values.str.contains(pattern, regex=True).fillna(False).to_numpy(dtype=bool)
                share = float((weights * hits).sum() / weights.sum())
                if share >= CONTAINS_SHARE:
                    example = mask(re.search(pattern, values[hits].iloc[0]).group(0))
                    plural = kind.replace("address", "addresse") + "s"
                    found.append(Finding(name, f"free text containing {plural}", "content", True,
                                         round(share, 4), example))
                    break
            else:
                found.append(Finding(name, "free text (may name people)", "content", False, None,
                                     f"{mean_len:.0f} characters on average"))
    return found


def scan_identifier(name: str, unique_share: float, n: int) -> Finding | None:
    """A column where (almost) every value is distinct: a record identifier, not a feature."""
    if n >= 100 and unique_share >= 0.99:
        return Finding(name, "identifier (every value distinct)", "content", False,
                       round(unique_share, 4), "")
    return None


# --- the checklist items -------------------------------------------------------------------------

def check_personal_data(df: pd.DataFrame, brief: Any, facts: Facts, seed: int
                        ) -> tuple[Item, pd.DataFrame]:
    findings: list[Finding] = []
    by_col = facts.columns.set_index("column")
    for col in df.columns:
        name = str(col)
        if name in facts.counts and not pd.api.types.is_bool_dtype(df[col]):
            found = scan_column(name, facts.counts[name], seed)
        else:
            named = by_name(name)
            found = [Finding(name, named[0], "name", named[1], None, "")] if named else []
        if not found and name != brief.time_column and not pd.api.types.is_datetime64_any_dtype(
                df[col]) and (not is_numeric(df[col]) or pd.api.types.is_integer_dtype(df[col])) \
                and not (df[col].dtype == object and parses_as_dates(df[col])):
            # a timestamp is never a record identifier, however distinct its values
            share = by_col.at[name, "distinct share"]
            share = float(share) if share is not None and share == share else 0.0
            ident = scan_identifier(name, share, facts.n)
            found = [ident] if ident else []
        findings += found
    table = pd.DataFrame([f.as_row() for f in findings],
                         columns=["column", "kind", "found by", "direct identifier", "matching share",
                                  "example (masked)"])
    rule = ("personal data by column name and by content patterns (e-mail, phone, card, SSN, IP, IBAN on "
            f"up to {SAMPLE_VALUES:,} distinct values per column); fail on direct identifiers found "
            "by content in modelled columns, warn on name-only matches, identifiers, free text")
    if not findings:
        return Item("privacy.personal_data", "privacy", "Privacy: personal data", "pass",
                    "no column looks like personal data by name or content", rule), table
    excluded = set(brief.exclude_columns) | ({brief.id_column} if brief.id_column else set())
    blocking = [f for f in findings if f.direct and "content" in f.basis and f.column not in excluded]
    parts = []
    for f in findings:
        text = f"{f.column}: {f.kind} by {f.basis}"
        if f.share is not None and "identifier" not in f.kind:
            text += f" ({_pct(f.share)} of values"
            text += f", e.g. {f.example})" if f.example else ")"
        if f.column in excluded:
            text += " [excluded from modelling, still stored]"
        parts.append(text)
    evidence = "; ".join(parts)
    if blocking:
        evidence += (". Direct identifiers must not reach the model: drop or pseudonymize them (or list "
                     "them in data.exclude_columns) and record the legal basis for storing them")
    else:
        evidence += ". Review them: keep identifiers for joins only, never as features"
    status = "fail" if blocking else "warn"
    return Item("privacy.personal_data", "privacy", "Privacy: personal data", status, evidence, rule), table


def check_sensitive(df: pd.DataFrame, brief: Any, facts: Facts) -> Item:
    rule = (f"the brief's sensitive attributes are listed with their groups; warn on groups under "
            f"{_pct(RULES['small_group'])} of rows or a feature that alone predicts an attribute "
            f"(proxy score >= {RULES['proxy_score']:g})")
    if not brief.sensitive:
        return Item("privacy.sensitive", "privacy", "Privacy: sensitive attributes", "warn",
                    "no sensitive attributes declared in brief.sensitive_features: declare them (sex, "
                    "race, age ...) so phase 3 can check fairness", rule)
    parts, warn = [], False
    exact = facts.extra_counts  # a table read in batches: its exact counts; df is a sample
    for attr in brief.sensitive:
        s = df[attr]
        grouped = attr in facts.counts or (attr in exact if exact is not None else s.nunique() <= 20)
        if grouped:
            vc = facts.counts.get(attr)
            vc = vc if vc is not None else exact[attr] if exact is not None else s.value_counts()
            shares = vc / vc.sum()
            small = shares[shares < RULES["small_group"]]
            text = f"{attr}: {len(vc)} groups, smallest {vc.index[-1]!s} {_pct(float(shares.iloc[-1]))}"
            if len(small):
                warn = True
                text += f" ({len(small)} group(s) under {_pct(RULES['small_group'])}: wide fairness intervals)"
            task = "classification"
        else:
            distinct = s.nunique() if exact is None else \
                facts.columns.set_index("column").at[attr, "distinct"]
            text = f"{attr}: numeric, {distinct:,} values (grouped into bins for fairness metrics)"
            task = "regression"
        others = [c for c in facts.features if c != attr]
        if others and s.notna().any():
            scores = single_feature_scores(df, others, attr, task, codes=facts.codes, seed=brief.seed)
            top = scores.iloc[0]
            if top["score"] >= RULES["proxy_score"]:
                warn = True
                text += f"; proxy: '{top['feature']}' alone predicts it (score {top['score']:.2f})"
        parts.append(text)
    evidence = "; ".join(parts)
    if warn:
        evidence += ". Check fairness per group in phase 3 (evaluate --fairness); dropping the attribute " \
                    "does not remove its proxies"
    return Item("privacy.sensitive", "privacy", "Privacy: sensitive attributes", "warn" if warn else "pass",
                evidence, rule)
