"""Draw a net as Caffe's draw_net.py does: layers as boxes (coloured by kind), blobs as octagons
with their shapes, edges bottom -> layer -> top; in-place tops are folded into their layer.

The layout is our own (no Graphviz needed): every node gets a rank (the longest path from the
net's inputs), ranks run top to bottom (or left to right), and nodes within a rank keep the order
they are written in the net. Written as SVG (self-contained), Graphviz DOT (for `dot -Tpdf`), or
PNG (through matplotlib: pip install 'netcli[plot]').
"""
from __future__ import annotations

import html
import os

from ..errors import NetcliError

COLORS = {"conv": "#FF5050", "pool": "#FF9900", "ip": "#CC33FF", "neuron": "#90EE90", "norm": "#7EC8E3",
          "loss": "#FFD966", "data": "#B4C7E7", "other": "#E0E0E0"}   # Caffe's draw_net palette, roughly
BLOB_COLOR = "#F2F2F2"
FORMATS = (".svg", ".dot", ".png")


def _layer_label(layer, config):
    """Its name, type and (for some types) geometry: the layer's draw_label()."""
    return [config.name, f"({layer.type})"] + layer.draw_label()


class Graph:
    """Nodes (layers and blobs) with ranks and positions, edges between them."""

    def __init__(self, net, rankdir="TB"):
        self.net, self.rankdir = net, rankdir
        self.nodes = {}      # id -> dict(kind, lines, fill, shape, rank)
        self.edges = []      # (from id, to id)
        current = {}         # blob name -> the node that holds its latest value
        order = []
        for i, (layer, config, bottoms, tops) in enumerate(zip(net.layers, net.configs, net.bottom_vecs,
                                                                net.top_vecs)):
            if config.inserted:              # the Splits netcli adds: not in the file, not drawn
                for t in tops:
                    current[t.name] = current.get(bottoms[0].name)
                continue
            lid = f"layer{i}"
            self.nodes[lid] = dict(kind="layer", lines=_layer_label(layer, config),
                                   fill=COLORS[layer.draw_kind], shape="box")
            order.append(lid)
            for b in bottoms:
                src = current.get(b.name)
                if src is None:                  # a blob nobody drew yet (e.g. fed from outside)
                    src = current[b.name] = self._blob(b, order)
                self.edges.append((src, lid))
            for t in tops:
                if t.name in [b.name for b in bottoms]:      # in place: the layer stands for the new value
                    self.nodes[lid]["lines"].append(f"-> {t.name} (in place)")
                    current[t.name] = lid
                    continue
                bid = self._blob(t, order)
                self.edges.append((lid, bid))
                current[t.name] = bid
        self._rank(order)

    def _blob(self, blob, order):
        bid = f"blob{len(self.nodes)}"
        shape = "x".join(map(str, blob.shape)) or "scalar"
        self.nodes[bid] = dict(kind="blob", lines=[blob.name, shape], fill=BLOB_COLOR, shape="octagon")
        order.append(bid)
        return bid

    def _rank(self, order):
        preds = {n: [] for n in self.nodes}
        for a, b in self.edges:
            preds[b].append(a)
        rank = {}
        for n in order:                           # written order is a topological order
            rank[n] = 1 + max((rank[p] for p in preds[n]), default=-1)
        rows = {}
        for n in order:
            rows.setdefault(rank[n], []).append(n)
        self.rows = [rows[r] for r in sorted(rows)]
        for n in order:
            self.nodes[n]["rank"] = rank[n]

    # -- geometry ------------------------------------------------------------------------------
    def layout(self, char_w=7.0, line_h=14.0, gap_main=46.0, gap_cross=24.0):
        """Positions: node centres (x, y) and box sizes (w, h), in pixels."""
        for n in self.nodes.values():
            n["w"] = max(len(s) for s in n["lines"]) * char_w + 20
            n["h"] = len(n["lines"]) * line_h + 12
        vertical = self.rankdir == "TB"
        main = 20.0
        cross_extent = []
        for row in self.rows:
            depth = max(self.nodes[n]["h" if vertical else "w"] for n in row)
            widths = [self.nodes[n]["w" if vertical else "h"] for n in row]
            cross_extent.append(sum(widths) + gap_cross * (len(row) - 1))
        width = max(cross_extent) + 40
        for row, extent in zip(self.rows, cross_extent):
            depth = max(self.nodes[n]["h" if vertical else "w"] for n in row)
            c = (width - extent) / 2
            for n in row:
                node = self.nodes[n]
                size = node["w" if vertical else "h"]
                centre_cross, centre_main = c + size / 2, main + depth / 2
                node["x"], node["y"] = (centre_cross, centre_main) if vertical else (centre_main, centre_cross)
                c += size + gap_cross
            main += depth + gap_main
        self.size = (width, main - gap_main + 20) if vertical else (main - gap_main + 20, width)
        self._route(vertical)
        return self.size

    def _band(self, rank, vertical):
        """(start, end) of the band a rank's nodes occupy along the main axis."""
        k, s = ("y", "h") if vertical else ("x", "w")
        nodes = [n for n in self.nodes.values() if n["rank"] == rank]
        return min(n[k] - n[s] / 2 for n in nodes), max(n[k] + n[s] / 2 for n in nodes)

    def _route(self, vertical):
        """Each edge as a polyline: straight between neighbouring ranks; an edge that skips ranks
        runs in a lane of its own beside the drawing, so it crosses no node."""
        self.routes = {}
        lanes = 0
        far = max(n["x" if vertical else "y"] + n["w" if vertical else "h"] / 2 for n in self.nodes.values())
        for a, b in self.edges:
            na, nb = self.nodes[a], self.nodes[b]
            if nb["rank"] - na["rank"] <= 1:
                # straight out of the source to the end of its rank's band, across the gap, then
                # straight into the target from the start of its band (nodes of a rank differ in size)
                end_a, start_b = self._band(na["rank"], vertical)[1], self._band(nb["rank"], vertical)[0]
                if vertical:
                    self.routes[(a, b)] = [(na["x"], na["y"] + na["h"] / 2), (na["x"], end_a), (nb["x"], start_b),
                                           (nb["x"], nb["y"] - nb["h"] / 2)]
                else:
                    self.routes[(a, b)] = [(na["x"] + na["w"] / 2, na["y"]), (end_a, na["y"]), (start_b, nb["y"]),
                                           (nb["x"] - nb["w"] / 2, nb["y"])]
                continue
            lanes += 1
            lane = far + 16 * lanes
            # out of the side of the source, down the lane, across just before the target's rank,
            # into the target's near side (the gap between ranks holds no node)
            off = 8 + 4 * (lanes % 4)
            # out of the source into the gap after its rank, along that gap to the lane, along the
            # lane, into the gap before the target's rank, and into the target: gaps hold no nodes
            gap_a = self._band(na["rank"], vertical)[1] + off
            gap_b = self._band(nb["rank"], vertical)[0] - off
            if vertical:
                self.routes[(a, b)] = [(na["x"], na["y"] + na["h"] / 2), (na["x"], gap_a), (lane, gap_a),
                                       (lane, gap_b), (nb["x"], gap_b), (nb["x"], nb["y"] - nb["h"] / 2)]
            else:
                self.routes[(a, b)] = [(na["x"] + na["w"] / 2, na["y"]), (gap_a, na["y"]), (gap_a, lane),
                                       (gap_b, lane), (gap_b, nb["y"]), (nb["x"] - nb["w"] / 2, nb["y"])]
        for k, pts in self.routes.items():      # no zero-length pieces: the arrow sits on the last one
            self.routes[k] = [q for i, q in enumerate(pts) if i == 0 or
                              abs(q[0] - pts[i - 1][0]) + abs(q[1] - pts[i - 1][1]) > 0.5]
        if lanes:
            W, H = self.size
            self.size = (far + 16 * lanes + 20, H) if vertical else (W, far + 16 * lanes + 20)


def draw(net, path, rankdir="TB"):
    """Write the drawing of `net` to `path` (.svg, .dot or .png); returns the Graph."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise NetcliError(f"{path}: the extension says the format: {', '.join(FORMATS)}")
    g = Graph(net, rankdir)
    g.layout()
    if ext == ".png":
        draw_png(g, path)
        return g
    text = to_svg(g) if ext == ".svg" else to_dot(g)
    from ..io.files import write_atomic
    write_atomic(path, text.encode("utf-8"), "drawing")
    return g


def _octagon(x, y, w, h):
    c = min(8.0, h / 3)
    pts = [(x - w / 2 + c, y - h / 2), (x + w / 2 - c, y - h / 2), (x + w / 2, y - h / 2 + c), (x + w / 2, y + h / 2 - c),
           (x + w / 2 - c, y + h / 2), (x - w / 2 + c, y + h / 2), (x - w / 2, y + h / 2 - c), (x - w / 2, y - h / 2 + c)]
    return pts


def to_svg(g):
    W, H = g.size
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W:.0f}" height="{H:.0f}" viewBox="0 0 {W:.0f} {H:.0f}" '
           f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           f"<title>{html.escape(g.net.name or 'net')}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>']
    for a, b in g.edges:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in g.routes[(a, b)])
        out.append(f'<polyline points="{pts}" fill="none" stroke="#555" stroke-width="1.2" '
                   'marker-end="url(#arrow)"/>')
    for n in g.nodes.values():
        x, y, w, h = n["x"], n["y"], n["w"], n["h"]
        if n["shape"] == "box":
            out.append(f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
                       f'fill="{n["fill"]}" stroke="#333"/>')
        else:
            pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in _octagon(x, y, w, h))
            out.append(f'<polygon points="{pts}" fill="{n["fill"]}" stroke="#333"/>')
        top = y - (len(n["lines"]) - 1) * 7
        for i, line in enumerate(n["lines"]):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{x:.1f}" y="{top + i * 14 + 4:.1f}" text-anchor="middle"{weight}>'
                       f"{html.escape(line)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_dot(g):
    def q(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = [f"digraph {q(g.net.name or 'net')} {{", f"  rankdir={g.rankdir};",
           '  node [fontname="Helvetica", fontsize=10];']
    for nid, n in g.nodes.items():
        label = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in n["lines"])
        out.append(f'  {nid} [label="{label}", shape={n["shape"]}, style=filled, fillcolor="{n["fill"]}"];')
    for a, b in g.edges:
        out.append(f"  {a} -> {b};")
    out.append("}")
    return "\n".join(out) + "\n"


def draw_png(g, path):
    """A laid-out net drawing (netcli.viz.draw.Graph) as PNG."""
    from matplotlib.patches import FancyBboxPatch, Polygon

    from .plot import _pyplot, _save
    plt = _pyplot()
    W, H = g.size
    fig = plt.figure(figsize=(W / 90, H / 90))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    for a, b in g.edges:
        pts = g.routes[(a, b)]
        if len(pts) > 2:
            ax.plot([p[0] for p in pts[:-1]], [p[1] for p in pts[:-1]], color="#555", lw=1)
        ax.annotate("", xy=pts[-1], xytext=pts[-2], arrowprops=dict(arrowstyle="-|>", color="#555", lw=1))
    for n in g.nodes.values():
        x, y, w, h = n["x"], n["y"], n["w"], n["h"]
        if n["shape"] == "box":
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=4",
                                        facecolor=n["fill"], edgecolor="#333"))
        else:
            ax.add_patch(Polygon(_octagon(x, y, w, h), closed=True, facecolor=n["fill"], edgecolor="#333"))
        top = y - (len(n["lines"]) - 1) * 7
        for i, line in enumerate(n["lines"]):
            ax.text(x, top + i * 14, line, ha="center", va="center", fontsize=8,
                    fontweight="bold" if i == 0 else "normal")
    _save(fig, path)
    plt.close(fig)
