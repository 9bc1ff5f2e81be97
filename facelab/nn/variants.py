"""The network's variants by name: the paper's four (its Tables 1 and 2) and facelab's own."""

#: The paper's method (``full``) and its ablations: without L_l2l, without L_id, and GCA.
PAPER_VARIANTS: tuple[str, ...] = ("full", "no-l2l", "no-id", "gca")
#: Every variant a network can be built as; ``identity-preserving`` is described in docs/neutraliser.md.
VARIANTS: tuple[str, ...] = (*PAPER_VARIANTS, "identity-preserving")
