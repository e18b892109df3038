"""``liquid_safe`` through Jekyll's own Liquid: what goes in comes out (mvnb/publish/blocks.py).

One Ruby process renders a batch of awkward strings (fixed ones and random mixes of Liquid
delimiters and ``raw``/``endraw`` words) with the Liquid that Jekyll loads, strict mode.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest

from mvnb.publish.blocks import fence, liquid_safe

FIXED = ["{{", "{%", "}}", "%}", "{{ x }}", "{% if %}", "{% raw %}", "{% endraw %}",
         "{%- endraw -%}", "{%endraw%}", "a {% endraw %} b {{ c }}", "{{{{", "{%%}",
         "x = {'a': {'b': 1}}", "\\frac{{a}}{b}", "{{ '{% endraw %}' }}", "```\n{{ }}\n```",
         "  {{ padded }}  \n", "{% raw %}{% endraw %}{% endraw %}"]
PIECES = ["{", "}", "{{", "}}", "{%", "%}", "-", " ", "raw", "endraw", "x", "\n", "'", '"']
RENDER = """
require 'jekyll'
require 'json'
inputs = JSON.parse(STDIN.read)
out = inputs.map do |text|
  begin
    Liquid::Template.parse(text, error_mode: :strict).render({})
  rescue => e
    "LIQUID ERROR: #{e.class}: #{e.message}"
  end
end
puts JSON.generate(out)
"""


def cases() -> list[str]:
    rng = random.Random(12)
    mixed = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14))) for _ in range(400)]
    return FIXED + mixed


def liquid(texts: list[str]) -> list[str]:
    if shutil.which("ruby") is None or shutil.which("jekyll") is None:
        pytest.skip("Jekyll is missing: apt-get install -y jekyll (./setup.sh test does)")
    done = subprocess.run(["ruby", "-e", RENDER], input=json.dumps(texts), capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_liquid_outputs_exactly_what_liquid_safe_was_given():
    texts = cases()
    rendered = liquid([liquid_safe(t) for t in texts])
    wrong = [(t, r) for t, r in zip(texts, rendered, strict=True) if r != t]
    assert wrong == []


def test_fenced_code_survives_liquid():
    code = 'print("{{ page.title }}")\n# {% endraw %} and {%- raw -%}\n'
    assert liquid([fence(code, "python")]) == [f"```python\n{code}```\n"]


def test_without_wrapping_liquid_would_break_or_eat_it():
    rendered = liquid(["{{ page.title }} and {% if x %}"])
    assert rendered[0] != "{{ page.title }} and {% if x %}"
