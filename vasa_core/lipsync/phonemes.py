"""Phonemes -> mouth parameters.

A table from IPA symbols to the engine's eight mouth parameters (see MOUTH_PARAMS), converters from the phone
sets we meet (espeak-ng IPA names, MBROLA SAMPA, CMU/ARPAbet from pocketsphinx), and coarticulation with
dominance functions (Cohen & Massaro 1993): every segment pulls each parameter towards its target with a
dominance that is flat inside the segment and decays exponentially outside it.  Per-parameter dominance
strengths and decay rates encode the usual phonetics: bilabial closure and f/v tuck are strong and local,
consonants are weak on lip shape so they inherit the neighbouring vowel's rounding/spreading, and rounding
decays slowly *before* a rounded segment, so the lips anticipate it.
"""
from __future__ import annotations

import numpy as np

MOUTH_PARAMS = ("jaw_open", "lip_funnel", "lip_stretch", "lip_press",
                "upper_lip_raise", "lower_lip_drop", "lower_lip_tuck", "tongue_show")
NP = len(MOUTH_PARAMS)
JAW, FUN, STR, PRS, ULR, LLD, TUCK, TNG = range(NP)

# --- the table ------------------------------------------------------------------------------------------------
# (jaw, funnel, stretch, press, upper_lip_raise, lower_lip_drop, tuck, tongue)
_V = {  # vowels
    "i": (.15, 0, .85, 0, .10, 0, 0, 0), "ɪ": (.22, 0, .60, 0, .05, .05, 0, 0),
    "y": (.15, .75, 0, 0, 0, 0, 0, 0), "ʏ": (.22, .60, 0, 0, 0, 0, 0, 0),
    "ɨ": (.18, 0, .40, 0, 0, 0, 0, 0), "ʉ": (.18, .75, 0, 0, 0, 0, 0, 0),
    "ɯ": (.18, 0, .55, 0, 0, 0, 0, 0), "u": (.15, .95, 0, 0, 0, 0, 0, 0), "ʊ": (.25, .70, 0, 0, 0, 0, 0, 0),
    "e": (.32, 0, .70, 0, .10, .10, 0, 0), "ø": (.30, .65, 0, 0, 0, .05, 0, 0),
    "ɘ": (.30, 0, .20, 0, 0, .05, 0, 0), "ɵ": (.30, .55, 0, 0, 0, .05, 0, 0),
    "ɤ": (.32, 0, .30, 0, 0, .05, 0, 0), "o": (.40, .80, 0, 0, 0, .10, 0, 0),
    "ə": (.35, 0, .10, 0, 0, .10, 0, 0), "ɚ": (.30, .35, 0, 0, .10, .05, 0, 0),
    "ɛ": (.48, 0, .50, 0, .10, .20, 0, 0), "œ": (.45, .50, 0, 0, 0, .20, 0, 0),
    "ɜ": (.42, 0, .10, 0, 0, .15, 0, 0), "ɞ": (.45, .45, 0, 0, 0, .15, 0, 0),
    "ʌ": (.55, 0, .10, 0, 0, .25, 0, 0), "ɔ": (.58, .60, 0, 0, 0, .25, 0, 0),
    "æ": (.68, 0, .50, 0, .20, .35, 0, 0), "ɐ": (.58, 0, .15, 0, 0, .30, 0, 0),
    "a": (.82, 0, .20, 0, .10, .45, 0, 0), "ɶ": (.75, .40, 0, 0, 0, .40, 0, 0),
    "ɑ": (.88, 0, .10, 0, .05, .50, 0, 0), "ɒ": (.75, .40, 0, 0, 0, .40, 0, 0),
}
_C = {  # consonants
    "p": (0, 0, 0, 1, 0, 0, 0, 0), "b": (0, 0, 0, 1, 0, 0, 0, 0), "m": (0, 0, 0, 1, 0, 0, 0, 0),
    "ɸ": (.05, .20, 0, .55, 0, 0, 0, 0), "β": (.05, .20, 0, .55, 0, 0, 0, 0),
    "f": (.10, 0, .10, 0, .25, 0, 1, 0), "v": (.10, 0, .10, 0, .25, 0, 1, 0), "ɱ": (.05, 0, 0, .3, .2, 0, .8, 0),
    "ʋ": (.12, 0, 0, 0, .15, 0, .6, 0),
    "θ": (.18, 0, .15, 0, .10, .10, 0, 1), "ð": (.18, 0, .15, 0, .10, .10, 0, 1),
    "t": (.15, 0, .10, 0, 0, 0, 0, .15), "d": (.15, 0, .10, 0, 0, 0, 0, .15), "n": (.15, 0, .10, 0, 0, 0, 0, .15),
    "s": (.10, 0, .30, 0, .10, 0, 0, 0), "z": (.10, 0, .30, 0, .10, 0, 0, 0),
    "l": (.25, 0, .10, 0, 0, .05, 0, .55), "ɫ": (.25, .10, 0, 0, 0, .05, 0, .45), "ɬ": (.2, 0, .1, 0, 0, 0, 0, .4),
    "ɾ": (.22, 0, .05, 0, 0, 0, 0, .20), "r": (.25, 0, 0, 0, 0, 0, 0, .15),
    "ɹ": (.20, .35, 0, 0, .05, 0, 0, 0), "ɻ": (.20, .25, 0, 0, 0, 0, 0, 0),
    "ʃ": (.15, .55, 0, 0, .40, .30, 0, 0), "ʒ": (.15, .55, 0, 0, .40, .30, 0, 0),
    "ʂ": (.15, .45, 0, 0, .35, .25, 0, 0), "ʐ": (.15, .45, 0, 0, .35, .25, 0, 0),
    "ɕ": (.12, .15, .35, 0, .25, .10, 0, 0), "ʑ": (.12, .15, .35, 0, .25, .10, 0, 0),
    "ç": (.15, 0, .40, 0, .10, 0, 0, 0), "ʝ": (.15, 0, .40, 0, .10, 0, 0, 0),
    "j": (.15, 0, .50, 0, .05, 0, 0, 0), "ɲ": (.15, 0, .30, 0, 0, 0, 0, 0), "ʎ": (.18, 0, .30, 0, 0, 0, 0, .1),
    "c": (.15, 0, .30, 0, 0, 0, 0, 0), "ɟ": (.15, 0, .30, 0, 0, 0, 0, 0),
    "k": (.25, 0, 0, 0, 0, 0, 0, 0), "g": (.25, 0, 0, 0, 0, 0, 0, 0), "ɡ": (.25, 0, 0, 0, 0, 0, 0, 0),
    "ŋ": (.22, 0, 0, 0, 0, 0, 0, 0), "x": (.25, 0, 0, 0, 0, 0, 0, 0), "ɣ": (.25, 0, 0, 0, 0, 0, 0, 0),
    "q": (.30, 0, 0, 0, 0, 0, 0, 0), "χ": (.30, 0, 0, 0, 0, 0, 0, 0), "ʁ": (.28, 0, 0, 0, 0, 0, 0, 0),
    "ʀ": (.28, 0, 0, 0, 0, 0, 0, 0), "ɰ": (.2, 0, .2, 0, 0, 0, 0, 0),
    "w": (.12, .95, 0, 0, 0, 0, 0, 0), "ɥ": (.12, .85, 0, 0, 0, 0, 0, 0),
    "h": (.30, 0, 0, 0, 0, 0, 0, 0), "ɦ": (.30, 0, 0, 0, 0, 0, 0, 0),
    "ʔ": (.20, 0, 0, 0, 0, 0, 0, 0), "ħ": (.35, 0, 0, 0, 0, 0, 0, 0), "ʕ": (.35, 0, 0, 0, 0, 0, 0, 0),
    "ʈ": (.15, 0, 0, 0, 0, 0, 0, 0), "ɖ": (.15, 0, 0, 0, 0, 0, 0, 0), "ɳ": (.15, 0, 0, 0, 0, 0, 0, 0),
    "ɭ": (.2, 0, 0, 0, 0, 0, 0, .2), "ɽ": (.2, 0, 0, 0, 0, 0, 0, 0),
}
SIL = "_"
TABLE: dict[str, np.ndarray] = {k: np.asarray(v, np.float32) for k, v in {**_V, **_C}.items()}
TABLE[SIL] = np.zeros(NP, np.float32)
VOWELS = set(_V)
BILABIAL = {"p", "b", "m"}
ROUNDED = {"u", "ʊ", "o", "y", "ʏ", "ø", "ʉ", "ɵ", "ɔ", "w", "ɥ", "œ"}
SPREAD = {"i", "ɪ", "e", "ɛ", "æ", "ɨ", "ɯ"}

# viseme classes (auxiliary training labels / reporting)
VISEMES = ("sil", "bilabial", "labiodental", "dental", "rounded", "spread", "open", "mid", "postalveolar",
           "other_cons")


def viseme_of(sym: str) -> int:
    if sym == SIL:
        return 0
    if sym in BILABIAL:
        return 1
    if sym in ("f", "v", "ɱ", "ʋ"):
        return 2
    if sym in ("θ", "ð"):
        return 3
    if sym in ROUNDED:
        return 4
    if sym in SPREAD:
        return 5
    if sym in VOWELS:
        return 6 if TABLE[sym][JAW] >= .5 else 7
    if sym in ("ʃ", "ʒ", "ʂ", "ʐ"):
        return 8
    return 9


# --- parsing phone names --------------------------------------------------------------------------------------
_ALIASES = {"ɚ": "ɚ", "ᵻ": "ɨ", "ɐ": "ɐ", "ɝ": "ɚ", "ɘ": "ɘ", "ɑ̃": "ɑ", "ɜː": "ɜ", "ɡ": "g", "ɹ̩": "ɚ",
            "ʤ": "dʒ", "ʧ": "tʃ", "ʦ": "ts", "ʣ": "dz", "ɒ": "ɒ", "ɬ": "ɬ", "ʲ": "", "ɪ̈": "ɨ", "ʊ̈": "ʉ",
            "ɯ̽": "ɯ", "ɵ": "ɵ", "ä": "a", "ë": "ə", "ö": "ø", "ü": "y", "ı": "ɪ", "ε": "ɛ", "ɷ": "ʊ",
            "ɩ": "ɪ", "ʋ": "ʋ", "ɧ": "ʃ", "ɺ": "ɾ", "ɴ": "ŋ", "ʏ": "ʏ", "ʙ": "b", "ɓ": "b", "ɗ": "d",
            "ʄ": "ɟ", "ɠ": "g", "ʛ": "g", "ɟ": "ɟ", "ʡ": "ʔ", "ɕ": "ɕ", "ʑ": "ʑ"}
_STRIP = set("ˈˌːˑ̩̯̃ʰʼ˞̪̺̻̥̬̤̰̼̝̞̘̙̹̜̟̠̈̽̚ʱˀ-=/#'0123456789!|¹²³⁴⁵˥˦˧˨˩.,;")


def ipa_tokens(name: str) -> list[str]:
    """Split an IPA phone name (espeak-ng style, maybe a diphthong/affricate) into symbols of TABLE.
    Returns [] for pauses/unknowns. 'ʷ' becomes an extra 'w' (labialisation)."""
    if not name or name in ("_", "_:", "_!", "||", "|", " "):
        return []
    out = []
    for ch in name:
        if ch in _STRIP or ch.isspace():
            continue
        ch = _ALIASES.get(ch, ch)
        if not ch:
            continue
        if ch == "ʷ":
            out.append("w")
            continue
        for c in ch:
            if c in TABLE:
                out.append(c)
    return out


# SAMPA / X-SAMPA as used by MBROLA voices, to IPA
_SAMPA = {
    "@U": "əʊ", "aI": "aɪ", "aU": "aʊ", "OI": "ɔɪ", "eI": "eɪ", "EI": "eɪ", "AI": "aɪ", "OY": "ɔʏ", "Ei": "ɛi",
    "9y": "œy", "r=": "ɚ", "3": "ɜ", "5": "ɫ", "@": "ə", "{": "æ", "A": "ɑ", "Q": "ɒ", "O": "ɔ", "E": "ɛ",
    "I": "ɪ", "U": "ʊ", "V": "ʌ", "Y": "ʏ", "2": "ø", "9": "œ", "6": "ɐ", "D": "ð", "T": "θ", "S": "ʃ",
    "Z": "ʒ", "N": "ŋ", "J": "ɲ", "L": "ʎ", "C": "ç", "R": "ʁ", "G": "ɣ", "x": "x", "tS": "tʃ", "dZ": "dʒ",
    "ts": "ts", "dz": "dz", "pf": "pf", "r": "r", "4": "ɾ", "?": "ʔ", "B": "β", "H": "ɥ", "j": "j",
    "ss": "s", "oo": "o", "E#": "ɛ", "n'": "ɲ", "s'": "ɕ", "z'": "ʑ", "ts'": "tɕ", "dz'": "dʑ", "dZ'": "dʑ",
    # voice-specific names (br1-4 nasal vowels, Czech/Hungarian palatals, Swedish aspirates, ...)
    "am": "a", "em": "e", "im": "i", "om": "o", "um": "u", "ee": "ɛ", "nh": "ɲ", "lh": "ʎ", "rr": "x", "r2": "ɾ",
    "s2": "s", "l^": "ʎ", "X": "x", "h\\": "ɦ", "ph": "p", "th": "t", "kh": "k", "nY": "ɲ", "u0": "ʉ", "r'": "r",
    "t'": "c", "d'": "ɟ", "@'": "ə", "L/": "ʎ", "l/": "l", "tS'": "tɕ", "i/": "i", "e/": "e", "o/": "o",
    "r\\": "ɹ", "1": "ɨ", "}": "ʉ", "M": "ɯ", "7": "ɤ", "8": "ɵ", "&": "ɶ", "_": "_", "#": "_",
}


def sampa_tokens(name: str) -> list[str]:
    n = name.strip()
    if n in ("_", "#", ""):
        return []
    base = n.replace(":", "").replace("~", "")
    for cand in (n, n.replace(":", ""), base, base.rstrip("0123456789/"), base.rstrip("0123456789/").rstrip("'")):
        if cand in _SAMPA:
            return ipa_tokens(_SAMPA[cand])
    base = base.rstrip("0123456789/#")
    return ipa_tokens("".join(_SAMPA.get(c, c) for c in base))


# CMU / ARPAbet (pocketsphinx en-us) to IPA
ARPA = {"AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ", "B": "b", "CH": "tʃ", "D": "d",
        "DH": "ð", "EH": "ɛ", "ER": "ɚ", "EY": "eɪ", "F": "f", "G": "g", "HH": "h", "IH": "ɪ", "IY": "i",
        "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "OW": "oʊ", "OY": "ɔɪ", "P": "p",
        "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "UH": "ʊ", "UW": "u", "V": "v", "W": "w",
        "Y": "j", "Z": "z", "ZH": "ʒ", "SIL": "_"}


def arpa_tokens(name: str) -> list[str]:
    return ipa_tokens(ARPA.get(name.upper().rstrip("012"), ""))


def expand_segments(segs, tokenizer=ipa_tokens):
    """[(name, start_s, end_s)] -> [(symbol, start_s, end_s)] with multi-symbol names split in time
    (diphthongs 50/50, affricates 35/65) and unknown names turned into silence."""
    out = []
    for name, s, e in segs:
        toks = tokenizer(name)
        if not toks:
            out.append((SIL, s, e))
            continue
        if len(toks) == 1:
            out.append((toks[0], s, e))
            continue
        if len(toks) == 2 and toks[0] not in VOWELS and toks[1] not in VOWELS:   # affricate
            w = np.array([.35, .65])
        else:
            w = np.ones(len(toks)) / len(toks)
        edges = s + (e - s) * np.concatenate([[0], np.cumsum(w)])
        for t, a, b in zip(toks, edges[:-1], edges[1:]):
            out.append((t, float(a), float(b)))
    # merge adjacent silences
    merged = []
    for seg in out:
        if merged and seg[0] == SIL and merged[-1][0] == SIL:
            merged[-1] = (SIL, merged[-1][1], seg[2])
        else:
            merged.append(seg)
    return merged


# --- coarticulation --------------------------------------------------------------------------------------------
def _dominance(sym: str, dur: float):
    """Per-parameter (strength, anticipatory rate 1/s, carry-over rate 1/s)."""
    a = np.ones(NP, np.float32)
    ant = np.full(NP, 60.0, np.float32)
    car = np.full(NP, 60.0, np.float32)
    if sym == SIL:
        a[:] = 0.6 if dur < 0.15 else 8.0       # short pauses barely move the mouth, long ones bring it to rest
        ant[:] = 60.0     # speech does not anticipate a pause much: the mouth relaxes after the last phone
        car[:] = 40.0     # ... and leaves rest shortly before speech starts
        return a, ant, car
    if sym in VOWELS:
        a[:] = 1.0
        if sym in ROUNDED:
            a[FUN] = 2.0
            ant[FUN] = 12.0                     # lips start rounding ~100-200 ms ahead
            car[FUN] = 25.0
        if sym in SPREAD:
            a[STR] = 1.5
            ant[STR] = 20.0
        return a, ant, car
    # consonants: weak on lip shape, so they inherit the vowels' rounding / spreading
    a[[FUN, STR, ULR, LLD]] = 0.25
    a[JAW] = 0.6
    if sym in BILABIAL:
        a[PRS] = 50.0; ant[PRS] = car[PRS] = 120.0
        a[JAW] = 3.0; a[LLD] = a[ULR] = 3.0
    elif sym in ("f", "v", "ɱ", "ʋ"):
        a[TUCK] = 40.0; ant[TUCK] = car[TUCK] = 110.0
        a[JAW] = 2.0; a[ULR] = 1.0
    elif sym in ("θ", "ð"):
        a[TNG] = 20.0; a[JAW] = 1.5
    elif sym in ("w", "ɥ"):
        a[FUN] = 4.0; ant[FUN] = 10.0
    elif sym in ("ʃ", "ʒ", "ʂ", "ʐ"):
        a[FUN] = 1.5; a[ULR] = 1.5; a[LLD] = 1.5; ant[FUN] = 15.0
    elif sym in ("l", "ɫ"):
        a[TNG] = 2.0
    elif sym in ("h", "ɦ", "ʔ"):
        a[:] = 0.1; a[PRS] = a[TUCK] = a[TNG] = 1.0
    elif sym in ("s", "z", "t", "d", "n", "j", "ç"):
        a[JAW] = 1.2
    return a, ant, car


def targets_from_segments(segs, times: np.ndarray) -> np.ndarray:
    """segs: [(symbol, start_s, end_s)] from expand_segments; times: sample times in s -> (len(times), 8)."""
    times = np.asarray(times, np.float64)
    num = np.zeros((len(times), NP), np.float64)
    den = np.full((len(times), NP), 1e-3, np.float64)   # tiny rest prior
    for sym, s, e in segs:
        dur = max(e - s, 1e-3)
        a, ant, car = _dominance(sym, dur)
        lo, hi = s - 0.6, e + 0.6
        i0, i1 = np.searchsorted(times, [lo, hi])
        if i1 <= i0:
            continue
        t = times[i0:i1, None]
        before = np.clip(s - t, 0, None)   # time until the segment starts (anticipation)
        after = np.clip(t - e, 0, None)
        d = a[None] * np.exp(-ant[None] * before - car[None] * after)
        num[i0:i1] += d * TABLE[sym][None]
        den[i0:i1] += d
    y = (num / den).astype(np.float32)
    return np.clip(y, 0, 1)


def segment_symbols_at(segs, times):
    """Index of the segment symbol covering each time (silence where none) -> list of symbols."""
    starts = np.array([s for _, s, _ in segs]) if segs else np.zeros(0)
    out = []
    for t in times:
        i = int(np.searchsorted(starts, t, side="right")) - 1
        if 0 <= i < len(segs) and segs[i][1] <= t < segs[i][2]:
            out.append(segs[i][0])
        else:
            out.append(SIL)
    return out
