"""Charts drawn on the server as inline SVG: bars and a line from the report's numbers.
No script and no style attribute, so the strict Content-Security-Policy is kept."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 40


def _frame(title: str, body: list[str], max_value: float, unit: str) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        value = max_value * step / 4
        y = TOP + plot_h - plot_h * step / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#e3e6ea" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{escape(_number(value))}{escape(unit)}</text>'
        )
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value in it went through escape()


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _labels(labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    every = max(1, len(labels) // 10)
    return [
        f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
        f'fill="#555">{escape(label)}</text>'
        for n, (label, x) in enumerate(zip(labels, xs, strict=True))
        if n % every == 0
    ]


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str = "") -> Markup:
    """Vertical bars, one per label; each bar has a tooltip with its value."""
    top = max([*values, 0.0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(values))
    body: list[str] = []
    xs: list[float] = []
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * max(value, 0.0) / top
        x = LEFT + slot * n + slot * 0.15
        xs.append(x + slot * 0.35)
        body.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="#2f6fde"><title>{escape(label)}: '
            f"{escape(_number(value))}{escape(unit)}</title></rect>"
        )
    body.extend(_labels(labels, xs))
    return _frame(title, body, top, unit)


def line_chart(
    title: str, labels: Sequence[str], values: Sequence[float | None], unit: str = ""
) -> Markup:
    """A line through the known values (a day without data leaves a gap), with dots."""
    top = max([v for v in values if v is not None] + [0.0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(values) - 1) if len(values) > 1 else 0.0
    xs = [LEFT + step * n if len(values) > 1 else LEFT + plot_w / 2 for n in range(len(values))]
    body: list[str] = []
    segment: list[str] = []
    for x, value, label in zip(xs, values, labels, strict=True):
        if value is None:
            if len(segment) > 1:
                body.append(_polyline(segment))
            segment = []
            continue
        y = TOP + plot_h - plot_h * value / top
        segment.append(f"{x:.1f},{y:.1f}")
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1a9c5b"><title>{escape(label)}: '
            f"{escape(_number(value))}{escape(unit)}</title></circle>"
        )
    if len(segment) > 1:
        body.append(_polyline(segment))
    body.extend(_labels(labels, xs))
    return _frame(title, body, top, unit)


def _polyline(points: list[str]) -> str:
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="#1a9c5b" stroke-width="2"/>'


def hbar_chart(
    title: str, labels: Sequence[str], values: Sequence[float], unit: str = ""
) -> Markup:
    """Horizontal bars, one per label (a share, a mix)."""
    top = max([*values, 0.0]) or 1.0
    row = 26
    height = TOP + row * max(1, len(values)) + 8
    label_w, plot_w = 170, WIDTH - 170 - RIGHT - 60
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + row * n
        w = plot_w * max(value, 0.0) / top
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" '
            f'fill="#333">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="#e07b24"><title>{escape(label)}: {escape(_number(value))}{escape(unit)}'
            "</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12" fill="#333">'
            f"{escape(_number(value))}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value in it went through escape()
