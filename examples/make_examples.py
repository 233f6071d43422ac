"""Redraw the example images in this folder (drawn by protodb itself, no downloads).

python examples/make_examples.py
"""

from pathlib import Path

from protodb.demo import draw_examples

if __name__ == "__main__":
    for path in draw_examples(Path(__file__).parent):
        print(path)
