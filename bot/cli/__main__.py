import sys

from bot.cli import main

if __name__ == "__main__":  # `python -m bot.cli`; importing this module runs nothing
    sys.exit(main())
