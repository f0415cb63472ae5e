"""Finding items the way people ask for them: everyday words, pinyin, typos, several words.

The catalogue is small (dozens of items), so search runs in the process over an index
built once from the catalogue rows and rebuilt when they change. An item is found by
its name (strongest), its `keywords` (饭店 for 食品经营许可), then its conditions text;
a Chinese query is also compared by pinyin, so a homophone typo (事品) still finds it.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

# Weights of where a word was found: a name beats a keyword beats the conditions.
NAME, KEYWORD, CONDITIONS = 3.0, 2.0, 0.3
# A match found through pinyin or one wrong character counts a bit less than the word.
FUZZY = 0.7
# Results below this share of the best score are noise (a word only in some conditions).
KEEP_SHARE = 0.12

# Words of the question around the thing asked for (我想开个饭店要办什么证).
_STOPWORDS = (
    "我 我要 我想 想 要 想要 的 了 吗 呢 啊 吧 个 一个 一家 家 怎么 怎么办 如何 怎样 办 办理 "
    "需要 要不要 需不需要 什么 哪些 哪个 在 去 到 和 与 及 或 手续 流程 材料 请问 申请 可以 能 "
    "能不能 是 有 没有 证 证件 咋 咋办 一下 那个 这个 谁 哪里 哪儿 什么样 该 应该"
)
STOPWORDS = frozenset(_STOPWORDS.split())
_HAN = re.compile(r"[\u3400-\u9fff]+")
_KEEP = re.compile(r"[^0-9a-z\u3400-\u9fff]+")

log = logging.getLogger(__name__)


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, punctuation to spaces."""
    return _KEEP.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def pinyin_of(text: str) -> tuple[str, str]:
    """Toneless pinyin and its initials (食品 → shipin, sp); other characters kept as they are."""
    # Imported here: its phrase dictionary costs a third of a second at import, and a
    # process that never searches (a worker, a command) never needs it.
    from pypinyin import lazy_pinyin

    full: list[str] = []
    initials: list[str] = []
    for run in re.split(r"([\u3400-\u9fff]+)", text.lower()):
        if not run:
            continue
        if _HAN.fullmatch(run):
            syllables = lazy_pinyin(run)
            full += syllables
            initials += [s[0] for s in syllables if s]
        else:
            chars = re.sub(r"[^0-9a-z]", "", run)
            full.append(chars)
            initials.append(chars)
    return "".join(full), "".join(initials)


def edit_distance(a: str, b: str, limit: int = 1) -> int:
    """Levenshtein distance, giving up (limit + 1) once it exceeds limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


class _Segmenter:
    """jieba, loaded on first use (its dictionary takes a second), knowing our words."""

    def __init__(self) -> None:
        self._tokenizer = None
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def learn(self, words: Iterable[str]) -> None:
        with self._lock:
            tokenizer = self._load()
            for word in words:
                if word not in self._known and len(word) >= 2:
                    tokenizer.add_word(word, freq=50_000)
                    self._known.add(word)

    def cut(self, text: str) -> list[str]:
        with self._lock:
            return [w for w in self._load().cut_for_search(text) if w.strip()]

    def _load(self):
        if self._tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            # Its own instance: nothing else in the process shares our added words.
            self._tokenizer = jieba.Tokenizer()
        return self._tokenizer


SEGMENTER = _Segmenter()


@dataclass(frozen=True)
class Term:
    """A word the index knows (a name, a part of one, a keyword) and where it comes from."""

    text: str
    code: str
    weight: float
    full: str
    initials: str


@dataclass(frozen=True)
class ItemDoc:
    code: str
    name: str
    domain: str
    keywords: tuple[str, ...]
    conditions: str


@dataclass(frozen=True)
class BundleDoc:
    code: str
    name: str
    description: str
    items: tuple[str, ...]


@dataclass
class Found:
    codes: list[str]
    bundles: list[str]
    suggestions: list[str] = field(default_factory=list)


class SearchIndex:
    """Every item's words, with their pinyin, ready to score a query against."""

    def __init__(self, items: list[ItemDoc], bundles: list[BundleDoc]) -> None:
        self.items = {i.code: i for i in items}
        self.bundles = bundles
        self.terms: list[Term] = []
        words: set[str] = set()
        for item in items:
            words.update(item.keywords)
            parts = {item.name: NAME}
            for part in SEGMENTER.cut(_strip_brackets(item.name)):
                if len(part) >= 2 and part not in STOPWORDS:
                    parts.setdefault(part, NAME)
            for keyword in item.keywords:
                parts.setdefault(keyword.lower(), KEYWORD)
            for text, weight in parts.items():
                full, initials = pinyin_of(text)
                self.terms.append(Term(text.lower(), item.code, weight, full, initials))
        SEGMENTER.learn(words)
        self.spread: dict[str, int] = defaultdict(int)  # how many items know each word
        for term in self.terms:
            self.spread[term.text] += 1

    def search(self, q: str) -> Found:
        norm = normalize(q)
        if not norm:
            return Found(codes=sorted(self.items), bundles=[])
        scores: dict[str, float] = defaultdict(float)
        corrections: dict[str, float] = {}
        compact = norm.replace(" ", "")
        for code in self.items:
            if code.lower() == compact:
                scores[code] += 1000
        exact = self._score_whole(compact, scores, corrections)
        tokens = self._tokens(norm)
        missed = [t for t in tokens if not self._score_token(t, scores, corrections)]
        if exact or (tokens and not missed):
            corrections.clear()  # every word was found as typed: nothing to correct
        guesses: list[str] = []
        if not any(v > 0 for v in scores.values()):
            guesses = self._score_characters(compact, scores)
        ranked = sorted((c for c in scores if scores[c] > 0), key=lambda c: (-scores[c], c))
        if ranked:
            top = scores[ranked[0]]
            ranked = [c for c in ranked if scores[c] >= top * KEEP_SHARE]
        suggestions = [t for t, _ in sorted(corrections.items(), key=lambda kv: -kv[1])]
        if guesses or not ranked:
            suggestions = suggestions or guesses or self._nearest(compact)
        suggestions = [s for s in dict.fromkeys(suggestions) if s != compact][:3]
        return Found(codes=ranked, bundles=self._bundles(norm, ranked), suggestions=suggestions)

    # --- scoring -------------------------------------------------------------------

    def _tokens(self, norm: str) -> list[str]:
        tokens: list[str] = []
        for chunk in norm.split():
            if _HAN.search(chunk):
                tokens += SEGMENTER.cut(chunk)
            else:
                tokens.append(chunk)
        tokens = [t for t in dict.fromkeys(tokens) if t not in STOPWORDS]
        if any(len(t) >= 2 for t in tokens):
            # 开 of 开超市 would find every item whose keywords start with 开.
            tokens = [t for t in tokens if len(t) >= 2 or not _HAN.fullmatch(t)]
        return tokens

    def _score_whole(self, q: str, scores: dict[str, float], corrections: dict[str, float]) -> bool:
        """The whole query against whole words: 施工证, a name typed in full, a typo of one."""
        if len(q) < 2:
            return False
        latin = not _HAN.search(q)
        q_full, _ = pinyin_of(q)
        exact = any(term.text == q or q in term.text for term in self.terms)
        for term in self.terms:
            bonus = 0.0
            if term.text == q:
                bonus = 12
            elif not latin and q in term.text:
                bonus = 8 * len(q) / len(term.text) + 4
            elif not latin and len(term.text) >= 2 and term.text in q:
                bonus = 6 * len(term.text) / len(q) + 2
            elif latin and q in (term.full, term.initials):
                bonus = 12
            elif latin and len(q) >= 2 and (term.initials.startswith(q) or q in term.full):
                bonus = 6 if len(q) >= 3 else 3
            elif exact:
                continue
            elif not latin and len(q) >= 2 and q_full and term.full.startswith(q_full):
                # A homophone typo (事品经营): the pinyin agrees, the characters do not.
                bonus = 8 * FUZZY
                corrections[term.text] = max(corrections.get(term.text, 0), bonus)
            elif not latin and len(q) >= 3 and edit_distance(q, term.text) <= 1:
                bonus = 8 * FUZZY
                corrections[term.text] = max(corrections.get(term.text, 0), bonus)
            if bonus:
                scores[term.code] += bonus * term.weight / self.spread[term.text] ** 0.5
        if not latin:
            for item in self.items.values():
                if q in item.conditions:
                    scores[item.code] += 2 * CONDITIONS
        return exact

    def _score_token(
        self, token: str, scores: dict[str, float], corrections: dict[str, float]
    ) -> bool:
        """One word of a longer query, longer words weighing more; whether it was found."""
        latin = not _HAN.search(token)
        if latin and len(token) < 2:
            return True
        size = min(len(token), 4) if not latin else min(len(token), 8) / 2
        matched = False
        best: dict[str, float] = {}
        for term in self.terms:
            if latin:
                hit = token in (term.full, term.initials) or (
                    len(token) >= 3 and (term.initials.startswith(token) or token in term.full)
                )
            else:
                hit = token in term.text or (len(term.text) >= 2 and term.text in token)
            if hit:
                matched = True
                best[term.code] = max(best.get(term.code, 0), term.weight * size)
        if not latin and len(token) >= 2:
            for item in self.items.values():
                if token in item.conditions:
                    best[item.code] = max(best.get(item.code, 0), CONDITIONS * size)
        if not matched and not latin and len(token) >= 2:
            t_full, _ = pinyin_of(token)
            for term in self.terms:
                same_sound = t_full == term.full or (
                    len(token) >= 2 and term.full.startswith(t_full) and len(t_full) >= 5
                )
                if same_sound or (len(token) >= 3 and edit_distance(token, term.text) <= 1):
                    best[term.code] = max(best.get(term.code, 0), term.weight * size * FUZZY)
                    corrections[term.text] = max(corrections.get(term.text, 0), size)
        # A word many items share (许可证, 登记) tells less than one only an item has (餐饮).
        rarity = 1 / max(len(best), 1) ** 0.5
        for code, value in best.items():
            scores[code] += value * rarity
        return matched

    def _score_characters(self, q: str, scores: dict[str, float]) -> list[str]:
        """Last resort, when no word was found: single characters (砍掉 → 砍树, 足疗 → 足浴).

        Returns the words that share the most characters with the query, to suggest."""
        chars = set(_HAN.findall(" ".join(q))) - STOPWORDS
        for char in chars:
            best: dict[str, float] = {}
            for term in self.terms:
                if char in term.text:
                    best[term.code] = max(best.get(term.code, 0), term.weight * FUZZY / 2)
            rarity = 1 / max(len(best), 1) ** 0.5
            for code, value in best.items():
                scores[code] += value * rarity
        shared = [(len(chars & set(t.text)) / len(t.text) ** 0.5, t.text) for t in self.terms]
        shared.sort(key=lambda x: -x[0])
        return [text for n, text in shared if n > 0][:3]

    def _nearest(self, q: str) -> list[str]:
        """Words sharing the most characters or pinyin with a query that found nothing."""
        if not q:
            return []
        q_chars = set(q)
        q_full, _ = pinyin_of(q)
        ranked: list[tuple[float, str]] = []
        for term in self.terms:
            shared = len(q_chars & set(term.text)) / len(q_chars | set(term.text))
            sound = _common_prefix(q_full, term.full) / max(len(q_full), 1)
            score = max(shared, sound * 0.9)
            if score >= 0.3:
                ranked.append((score, term.text))
        ranked.sort(key=lambda x: (-x[0], len(x[1])))
        return [text for _, text in ranked]

    def _bundles(self, norm: str, ranked: list[str]) -> list[str]:
        """一件事 whose name or description says what was asked, or a word of a found item."""
        words = [w for w in [norm.replace(" ", ""), *self._tokens(norm)] if len(w) >= 2]
        related: set[str] = set()
        for code in ranked[:3]:
            item = self.items[code]
            if any(w in k for w in words for k in item.keywords):
                related.update(k for k in item.keywords if len(k) >= 2)
        found = set(ranked[:3])
        scored: list[tuple[float, str]] = []
        for bundle in self.bundles:
            score = 0.0
            for w in words:
                if w in bundle.name:
                    score += 3 * len(w)
                elif w in bundle.description:
                    score += len(w)
            if any(k in bundle.name for k in related):
                score += 4
            if score and found & set(bundle.items):
                score += 1
            if score:
                scored.append((score, bundle.code))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [code for _, code in scored[:3]]


def _strip_brackets(name: str) -> str:
    return (
        re.sub(r"[（(][^）)]*[）)]", " ", name)
        + " "
        + " ".join(re.findall(r"[（(]([^）)]*)", name))
    )


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
