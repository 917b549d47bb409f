"""Labeling configs and task data shared by tests."""

from __future__ import annotations

import base64
import io

from PIL import Image

#: Text classification with three choices, as in the captured Label Studio fixtures.
TEXT_CHOICES_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>"""

TEXT_SINGLE = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""

TEXT_MULTI = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="sports"/><Choice value="politics"/><Choice value="tech"/>
  </Choices>
</View>"""

HYPERTEXT = """<View>
  <HyperText name="page" value="$html"/>
  <Choices name="kind" toName="page"><Choice value="spam"/><Choice value="ham"/></Choices>
</View>"""

IMAGE = """<View>
  <Image name="image" value="$image"/>
  <Choices name="animal" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>
  <TextArea name="act_rationale" toName="image" editable="false"/>
</View>"""

VQA = """<View>
  <Image name="image" value="$image"/>
  <Text name="question" value="$question"/>
  <TextArea name="answer" toName="image" rows="2" maxSubmissions="1"/>
</View>"""


def png_data_url(color: tuple[int, int, int] = (255, 0, 0)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


#: Text choices with the critic's rationale field.
TEXT = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
  <TextArea name="act_rationale" toName="text" editable="false"/>
</View>"""

# text → (label the annotator gives, suspicion the critic gives)
SCRIPT = {
    "review alpha": ("positive", 0.05),
    "review bravo": ("negative", 0.90),
    "review charlie": ("neutral", 0.40),
    "review delta": ("positive", 0.75),
    "review echo": ("negative", 0.15),
    "review foxtrot": ("neutral", 0.60),
}
