"""Each entity's token positions in its prompt.

Found by position, never by searching for the entity's first token (REFERENCE 1.2: a search
breaks when the entity's first word also occurs earlier, "a red disc and a red ..."): the
tokens of the text before the entity are counted, then the entity's own; the tokenized prompt
must hold exactly the entity's tokens at that place (the tokenizer splits at word boundaries,
and entities are whole words), else the prompt is refused. Position 0 is start-of-text.
"""

from __future__ import annotations

from protodb.errors import ProtodbError
from protodb.grounded.compose import Composition


def entity_token_positions(tokenizer, composition: Composition) -> list[list[int]]:
    """Token positions of every entity of ``composition`` (one list per entity, in entity
    order; an entity named twice has the positions of both mentions)."""
    prompt = composition.prompt

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids if text.strip() else []

    full = ids(prompt)
    limit = tokenizer.model_max_length - 1  # the last position holds end-of-text
    if 1 + len(full) > limit:
        raise ProtodbError(
            f"prompt {prompt!r} gives {len(full)} tokens; the text encoder reads at most "
            f"{limit - 1}: use a shorter prompt"
        )
    out = []
    for entity in composition.entities:
        positions: list[int] = []
        for start, stop in entity.spans:
            before = len(ids(prompt[:start]))
            own = ids(prompt[start:stop])
            if not own or full[before : before + len(own)] != own:
                raise ProtodbError(
                    f"prompt {prompt!r}: {entity.name!r} merges with the text around it when "
                    "tokenized; put spaces around it"
                )
            positions += list(range(1 + before, 1 + before + len(own)))
        out.append(positions)
    return out
