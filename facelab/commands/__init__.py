"""The ``facelab`` commands, by group: each module adds its commands' arguments and runs them."""
