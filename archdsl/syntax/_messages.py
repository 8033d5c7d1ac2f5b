"""Syntax error messages in the user's words, from lark's raw facts.

lark says "unexpected token RPAR, expected one of NAME, COUNT, LPAR, SHARED"; a user needs
"empty parentheses: expected a layer call inside '( )'". Each function gets the offending token
(or character), what the parser would have accepted, and the tokens before it (after the layout
step), and picks the most specific message it can; the last resort still names what was found
and what was expected, in words.
"""

from __future__ import annotations

from lark import Token

# lark terminal names -> words, in the order they are listed in a message
_WORDS = {
    "NAME": "a name",
    "KEY": "a parameter (key=value)",
    "NUMBER": "a number",
    "TRUE": "true",
    "FALSE": "false",
    "COUNT": "a repeat such as 4x(...)",
    "SHARED": "'shared(...)'",
    "LPAR": "'('",
    "RPAR": "')'",
    "VBAR": "'|'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "DOTDOT": "'..'",
    "CHOICE_X": "'}x'",
    "EACH": "'each'",
    "LET": "'let'",
    "MODEL": "'model'",
    "_NL": "a new line",
    "$END": "the end of the input",
}
_CALL_START = {"NAME", "COUNT", "LPAR", "SHARED"}  # (and LBRACE in a search space)
_VALUE = {"NUMBER", "TRUE", "FALSE", "NAME"}
EMPTY_PROGRAM = "empty program: expected a layer call such as 'attn' or '4x(ssm)'"


def describe(tok: Token) -> str:
    """How a found token is named in a message."""
    if tok.type == "$END":
        return "the end of the input"
    if tok.type == "_NL":
        return "';'" if tok.value == ";" else "the end of the line"
    if tok.type == "NUMBER":
        return f"the number {_short(tok.value)}"
    if tok.type == "KEY":
        return f"the parameter '{key_name(tok)}='"
    return f"'{tok.value}'"


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expected_words(expected: set[str]) -> str:
    """``{"RPAR", "VBAR", "NAME", ...}`` -> "a layer call, '|' or ')'"."""
    expected = set(expected)
    phrases = []
    if _CALL_START <= expected:
        expected -= _CALL_START
        phrases.append("a layer call")
    if _VALUE <= expected:
        expected -= _VALUE
        phrases.append("a value (a number, true, false or a name)")
    phrases += [_WORDS.get(name, name) for name in _WORDS if name in expected]
    phrases += sorted(name for name in expected if name not in _WORDS)
    if len(phrases) <= 1:
        return "".join(phrases) or "nothing more"
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def key_name(tok: Token) -> str:
    return tok.value.rstrip("= \t")


def _open_parens(before: list[Token]) -> list[Token]:
    stack: list[Token] = []
    for tok in before:
        if tok.type in ("LPAR", "LBRACE"):
            stack.append(tok)
        elif tok.type in ("RPAR", "RBRACE", "CHOICE_X") and stack:
            stack.pop()
    return stack


def _opener(before: list[Token], lpar: Token) -> str:
    """'4x(' / 'shared(' / '(' for the open parenthesis ``lpar``."""
    i = before.index(lpar)
    if i > 0 and before[i - 1].type in ("COUNT", "SHARED"):
        return f"{before[i - 1].value}("
    return "("


def token_message(tok: Token, expected: set[str], before: list[Token]) -> str:
    """The message for an unexpected token ``tok`` (``$END`` at the end of the input)."""
    prev = before[-1] if before else None
    prev2 = before[-2] if len(before) > 1 else None
    found = describe(tok)
    kind = tok.type
    if kind == "$END" and not before:
        return EMPTY_PROGRAM
    if prev is not None and prev.type == "KEY":
        if prev2 is not None and prev2.type == "LET":
            if kind == "_NL" and tok.value == "\n":
                return (
                    f"expected a layer call after 'let {key_name(prev)} =' on the same line "
                    "(a let ends with its line; inside parentheses it may continue)"
                )
            return f"expected a layer call after 'let {key_name(prev)} =', found {found}"
        return f"expected a value after '{key_name(prev)}=' (a number, true, false or a name), found {found}"
    if prev is not None and prev.type == "COUNT":
        return f"expected '(' after '{prev.value}', as in {prev.value}(ssm); found {found}"
    if prev is not None and prev.type == "SHARED":
        return f"expected '(' after 'shared', as in shared(attn mlp); found {found}"
    if prev is not None and prev.type == "LET":
        if kind == "NAME":
            return f"expected '=' after 'let {tok.value}', as in let {tok.value} = ssm mlp"
        return f"expected a name after 'let', as in let block = ssm mlp; found {found}"
    if kind == "KEY" and key_name(tok) in ("let", "model", "shared"):
        word = key_name(tok)
        if word == "let":
            return "expected a name between 'let' and '=', as in let block = ssm mlp"
        return f"unexpected '{word}=': '{word}' is a keyword, not a parameter name"

    stack = _open_parens(before)
    choice = _choice_message(tok, kind, prev, stack, found)
    if choice:
        return choice
    if kind == "RPAR":
        if not stack:
            return "unexpected ')': there is no '(' to close"
        if prev is not None and prev.type == "LPAR":
            return f"empty parentheses: expected a layer call inside '{_opener(before, prev)} )'"
        if prev is not None and prev.type == "VBAR":
            return "empty branch: expected a layer call between '|' and ')'"
    if kind == "VBAR":
        if prev is not None and prev.type in ("LPAR", "VBAR"):
            return "empty branch: expected a layer call before '|'"
        if not stack:
            return "unexpected '|': parallel branches go inside parentheses, as in (attn | ssm)"
    if kind == "$END":
        if stack and stack[-1].type == "LBRACE":
            brace = stack[-1]
            return f"unexpected end of input: expected '}}' to close the choice opened at {brace.line}:{brace.column}"
        if stack:
            lpar = stack[-1]
            return f"unexpected end of input: expected ')' to close '{_opener(before, lpar)}' opened at {lpar.line}:{lpar.column}"
        if "_NL" in expected and any(t.type == "LET" for t in before):
            last = [before[i + 1] for i, t in enumerate(before[:-1]) if t.type == "LET"][-1]
            name = key_name(last)
            return (
                "missing stack expression: after the 'let' definitions a program needs the layers "
                f"to stack, as in 4x({name})"
            )
        if "LET" in expected:
            return (
                "missing stack expression: after the 'model' header a program needs the layers to stack, as in 4x(ssm)"
            )
    if kind == "LET":
        if "_NL" in expected:
            return "'let' must start a new line (or follow ';')"
        return "'let' definitions must come before the stack expression"
    if kind == "MODEL":
        return "the 'model' header must come first, before any 'let' or layer"
    if kind == "KEY" and _CALL_START <= expected:
        return (
            f"unexpected '{tok.value.strip()}': a parameter (key=value) must follow a layer name, as in attn window=512"
        )
    if kind == "NUMBER" and _CALL_START <= expected:
        shown = tok.value if len(tok.value) <= 12 else "N"
        if not tok.value.replace("_", "").isdigit():  # signed or fractional: not a count
            return f"unexpected number {_short(tok.value)}: a value needs a parameter name, as in key={shown}"
        return f"unexpected number {_short(tok.value)}: write a repeat as {shown}x(...) and a parameter as key={shown}"
    if kind in ("TRUE", "FALSE") and _CALL_START <= expected:
        return f"unexpected '{tok.value}': a value needs a parameter name, as in qk_norm={tok.value}"
    if kind == "_NL" and tok.value == ";" and stack:
        return "unexpected ';' inside parentheses: ';' only ends a 'model' or 'let' line"
    return f"unexpected {found}: expected {expected_words(expected)}"


def _choice_message(tok: Token, kind: str, prev: Token | None, stack: list[Token], found: str) -> str:
    """Messages about search-space choices (``{...}``), or an empty string."""
    inside_brace = bool(stack) and stack[-1].type == "LBRACE"
    if kind in ("RBRACE", "CHOICE_X") and prev is not None and prev.type == "LBRACE":
        return "empty choice: expected options inside '{ }', as in {ssm, attn} or {256, 512}"
    if kind in ("RBRACE", "CHOICE_X", "COMMA") and prev is not None and prev.type == "COMMA":
        return "empty option: expected a value or a layer call after ','"
    if kind == "COMMA" and prev is not None and prev.type == "LBRACE":
        return "empty option: expected a value or a layer call before ','"
    if kind == "RPAR" and inside_brace:
        brace = stack[-1]
        return f"unexpected ')': expected '}}' to close the choice opened at {brace.line}:{brace.column}"
    if kind in ("RBRACE", "CHOICE_X") and stack and stack[-1].type == "LPAR":
        return f"unexpected {found}: expected ')' to close '(' opened at {stack[-1].line}:{stack[-1].column}"
    if kind in ("RBRACE", "CHOICE_X") and not stack:
        return f"unexpected {found}: there is no '{{' to close"
    if kind == "COMMA" and not inside_brace:
        return "unexpected ',': items and parameters are separated by spaces; ',' separates the options of a choice"
    if kind == "DOTDOT":
        return "unexpected '..': a range is written inside braces between two numbers, as in state={16..128}"
    if kind == "EACH":
        return "unexpected 'each': it marks a repeat whose copies draw their own choices, as in 4x each(ssm {mlp, moe})"
    if kind == "CHOICE_X":
        return "unexpected '}x': a repeat-count choice holds numbers, as in {2, 4, 8}x(ssm)"
    if prev is not None and prev.type == "LBRACE" and kind == "KEY":
        return f"unexpected {found}: a choice holds values or layer calls, as in window={{256, 512}} or {{ssm, attn}}"
    return ""


def character_message(source: str, pos: int, before: list[Token]) -> str:
    """The message for a character that starts no token at all."""
    char = source[pos]
    if char == ".":
        return "unexpected '.': write a number with digits on both sides of the point, as in 0.5"
    if char == "=":
        return "unexpected '=': a parameter needs a name before '=' (as in window=512)"
    if char in "-+":
        return f"unexpected '{char}': names are written with '_' (as in kv_heads), a signed number as -1"
    if char in "\"'":
        return "unexpected quote: names and values are written without quotes (as in act=silu)"
    if char.isprintable() and not char.isspace():
        if char.isalpha():
            return f"unexpected character '{char}': names use ASCII letters, digits and '_'"
        return f"unexpected character '{char}'"
    return f"unexpected character U+{ord(char):04X}"
