"""``python -m batchsem``: the same as the ``batchsem`` command."""

from batchsem._entry import main

if __name__ == "__main__":
    main()
