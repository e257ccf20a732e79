# ruff: noqa: E501 - prose and fixture rows read better unwrapped
"""Builds examples/data/stackexchange/chemistry.stackexchange.com_Posts.xml from hand-written posts.

The posts are written for this project (not copied from Stack Exchange); the file uses the real
dump layout so the demo has a STEM site. Run: .venv/bin/python examples/data/src/make_chemistry.py
"""

from pathlib import Path

from lxml import etree

OUT = (
    Path(__file__).resolve().parents[1] / "stackexchange" / "chemistry.stackexchange.com_Posts.xml"
)

QA = [
    (
        "Why does ice float on water?",
        "<p>Most solids sink in their own liquid. Why is water different?</p>",
        """<p>Ice floats because it is less dense than liquid water: about 0.917 g/cm³ for ice at 0 °C
against 0.9998 g/cm³ for liquid water at the same temperature. The reason lies in hydrogen bonding.</p>
<p>Each water molecule can donate two hydrogen bonds and accept two. In ordinary ice (ice I<sub>h</sub>)
every molecule takes part in exactly four hydrogen bonds arranged tetrahedrally. That geometry
forces the molecules into an open hexagonal lattice with a lot of empty space inside the rings.</p>
<p>When ice melts, roughly 10-15% of those hydrogen bonds break at any instant. The network partly
collapses and molecules move into the cavities, so the liquid packs more tightly than the solid.
Two competing effects then decide the density of the liquid as it warms:</p>
<ul>
<li>further collapse of the remaining ice-like structure, which increases density;</li>
<li>ordinary thermal expansion, which decreases it.</li>
</ul>
<p>Below 4 °C the first effect wins, above 4 °C the second one does, which is why liquid water has
its density maximum near 3.98 °C.</p>
<p>The consequences matter a great deal. Lakes freeze from the top down, and the floating ice
insulates the water below, so aquatic life survives the winter. Freezing water in a rock crack
expands by about 9% and splits the rock (frost weathering). Pipes burst for the same reason.</p>
<p>Water is not completely unique: silicon, germanium, gallium and bismuth also expand on freezing,
because their solids have open, directional bonding networks too. But among common liquids,
water is the familiar example of a solid that floats on its own melt.</p>""",
        42,
    ),
    (
        "What is the difference between an ionic and a covalent bond?",
        "<p>Textbooks describe both as attractions between atoms. How are they actually different?</p>",
        """<p>Both kinds of bond come from the same physics, the electrostatic attraction between nuclei and
electrons, but they differ in how the bonding electrons are distributed.</p>
<h2>Covalent bonds</h2>
<p>In a covalent bond two atoms share a pair of electrons. The electron density piles up between
the nuclei and holds them together. When the two atoms have similar electronegativity (H-H, C-C,
C-H) the sharing is nearly equal. Covalent bonds are directional, which is why molecules have
definite shapes: methane is tetrahedral, water is bent.</p>
<h2>Ionic bonds</h2>
<p>When the electronegativity difference is large (roughly above 1.7 on the Pauling scale), one
atom effectively transfers electrons to the other. Sodium gives an electron to chlorine, giving
Na<sup>+</sup> and Cl<sup>-</sup>. The ions attract each other in all directions, so ionic compounds
form extended lattices rather than discrete molecules.</p>
<h2>A continuum, not two boxes</h2>
<p>Real bonds lie on a continuum:</p>
<ol>
<li>non-polar covalent (Cl<sub>2</sub>),</li>
<li>polar covalent (HCl, H<sub>2</sub>O), where the shared pair sits closer to one atom,</li>
<li>mostly ionic (NaCl, MgO).</li>
</ol>
<p>Even NaCl has some covalent character, and the "percent ionic character" estimated from dipole
moments captures this.</p>
<h2>How the difference shows in properties</h2>
<ul>
<li>Ionic solids have high melting points, are brittle, and conduct electricity when molten or
dissolved, because the ions become mobile.</li>
<li>Molecular covalent substances usually melt and boil at low temperatures, because only weak
intermolecular forces hold the molecules together, and they do not conduct.</li>
<li>Network covalent solids such as diamond and quartz are the exception: every atom is bonded
covalently to its neighbours, so they are extremely hard and melt at very high temperatures.</li>
</ul>""",
        35,
    ),
    (
        "How can the pH of a buffer be calculated in Python?",
        "<p>Looking for a simple way to compute the pH of an acetic acid/acetate buffer for "
        "several concentrations.</p>",
        """<p>For a weak acid HA and its conjugate base A<sup>-</sup>, the Henderson-Hasselbalch equation gives
the pH directly:</p>
<p>pH = pK<sub>a</sub> + log<sub>10</sub>([A<sup>-</sup>] / [HA])</p>
<p>It holds well when both concentrations are much larger than [H<sup>+</sup>] and
[OH<sup>-</sup>], which is true for typical buffers between about 0.01 and 1 M. For acetic acid,
pK<sub>a</sub> = 4.76 at 25 °C.</p>
<p>A short script:</p>
<pre><code>import math

PKA_ACETIC = 4.76

def buffer_ph(acid_molar: float, base_molar: float, pka: float = PKA_ACETIC) -&gt; float:
    if acid_molar &lt;= 0 or base_molar &lt;= 0:
        raise ValueError("both concentrations must be positive")
    return pka + math.log10(base_molar / acid_molar)

for acid, base in [(0.1, 0.1), (0.1, 0.2), (0.2, 0.05)]:
    print(f"{acid:.2f} M HA, {base:.2f} M A-: pH {buffer_ph(acid, base):.2f}")
</code></pre>
<p>The output is pH 4.76, 5.06 and 4.16. Equal concentrations give pH = pK<sub>a</sub>, and
every factor of ten in the ratio moves the pH by one unit.</p>
<p>When the approximation breaks down (very dilute buffers, or ratios beyond about 10:1), solve the
full charge balance instead. With C<sub>a</sub> and C<sub>b</sub> the analytical concentrations
and sodium as the counter-ion, the equation is:</p>
<pre><code>[H+] + [Na+] = [OH-] + [A-]
</code></pre>
<p>Substitute [A<sup>-</sup>] = (C<sub>a</sub> + C<sub>b</sub>) K<sub>a</sub> / (K<sub>a</sub> +
[H<sup>+</sup>]) and [OH<sup>-</sup>] = K<sub>w</sub> / [H<sup>+</sup>], then find the root in
[H<sup>+</sup>] numerically, for example with bisection between 1e-14 and 1.</p>""",
        28,
    ),
    (
        "Why do catalysts not change the equilibrium constant?",
        "<p>A catalyst speeds up a reaction, so why does it not push the equilibrium further?</p>",
        """<p>A catalyst lowers the activation energy of a reaction by offering a different pathway, but it
lowers it by the same amount for the forward and the reverse reaction. The equilibrium constant
depends only on the difference in Gibbs energy between products and reactants:</p>
<p>ΔG° = -RT ln K</p>
<p>Reactants and products are the same with or without the catalyst, so ΔG° is the same, and so
is K. The catalyst changes how fast the system gets to equilibrium, not where equilibrium lies.</p>
<p>There is also a thermodynamic argument. Suppose a catalyst could shift an equilibrium. Then one
could build a cycle: insert the catalyst, let the composition shift and extract work from the
change, remove the catalyst, let the system relax back, and repeat. That would be a perpetual
motion machine of the second kind, which the second law forbids.</p>
<p>Seen through kinetics, at equilibrium the forward and reverse rates are equal:</p>
<ul>
<li>k<sub>f</sub>[A] = k<sub>r</sub>[B], so K = k<sub>f</sub> / k<sub>r</sub>;</li>
<li>a catalyst multiplies k<sub>f</sub> and k<sub>r</sub> by the same factor, since both
transition states are the same species on the new pathway;</li>
<li>the ratio, and therefore K, is unchanged.</li>
</ul>
<p>Practical consequences follow. In the Haber-Bosch process the iron catalyst lets ammonia form
at a useful rate, but the yield is still set by temperature and pressure, which is why the process
runs at high pressure and at a compromise temperature. Enzymes in cells work the same way:
they accelerate reactions enormously, and the cell drives unfavourable reactions by coupling them
to favourable ones such as ATP hydrolysis, not by catalysis alone.</p>""",
        31,
    ),
    (
        "What makes a solvent polar or non-polar?",
        "<p>How is polarity of a solvent defined and measured?</p>",
        """<p>Solvent polarity describes how strongly a solvent interacts with charges and dipoles. There is no
single number for it, because several molecular properties contribute.</p>
<h2>Molecular dipole moment</h2>
<p>A molecule is polar when its bond dipoles do not cancel. Water (1.85 D) and acetone (2.9 D) are
polar; carbon tetrachloride has four polar C-Cl bonds arranged symmetrically, so its net dipole is
zero and it behaves as a non-polar solvent.</p>
<h2>Dielectric constant</h2>
<p>The relative permittivity ε<sub>r</sub> measures how well the solvent screens the attraction
between opposite charges. Water has ε<sub>r</sub> ≈ 78, DMSO about 47, ethanol about 25, hexane
about 1.9. A high value lets ionic compounds dissolve, because separated ions are stabilised.</p>
<h2>Hydrogen bonding</h2>
<p>Solvents are often grouped as:</p>
<ul>
<li><strong>polar protic</strong>: have O-H or N-H bonds and donate hydrogen bonds (water,
methanol, acetic acid);</li>
<li><strong>polar aprotic</strong>: polar but without acidic hydrogens (acetone, DMSO,
acetonitrile, DMF);</li>
<li><strong>non-polar</strong>: low dipole moment and dielectric constant (hexane, toluene,
diethyl ether is borderline).</li>
</ul>
<p>The distinction matters in organic chemistry. S<sub>N</sub>2 reactions are much faster in polar
aprotic solvents, because protic solvents surround the nucleophile with hydrogen bonds and make it
less reactive.</p>
<h2>Empirical scales</h2>
<p>Because no single property captures everything, chemists use empirical scales based on how a
probe molecule behaves: Reichardt's E<sub>T</sub>(30) scale uses the colour shift of a dye, and the
Kamlet-Taft parameters separate hydrogen-bond donation, acceptance and polarisability.
"Like dissolves like" remains a useful rule of thumb built on all of these.</p>""",
        19,
    ),
    (
        "Why is the boiling point of water lower at high altitude?",
        "",
        """<p>A liquid boils when its vapour pressure equals the pressure of the surroundings. At sea level the
atmospheric pressure is about 101.3 kPa, and water reaches that vapour pressure at 100 °C. Higher
up, the air pressure is lower, so water needs less heating before its vapour pressure matches it.</p>
<p>The relation between vapour pressure and temperature is described by the Clausius-Clapeyron
equation:</p>
<p>ln(P<sub>2</sub>/P<sub>1</sub>) = -(ΔH<sub>vap</sub>/R)(1/T<sub>2</sub> - 1/T<sub>1</sub>)</p>
<p>With ΔH<sub>vap</sub> ≈ 40.7 kJ/mol, the equation predicts the following for a few places:</p>
<ul>
<li>Denver, about 1,600 m, pressure about 83 kPa: water boils near 95 °C;</li>
<li>La Paz, about 3,600 m, pressure about 65 kPa: near 88 °C;</li>
<li>the summit of Everest, about 8,850 m, pressure about 34 kPa: near 71 °C.</li>
</ul>
<p>A useful approximation is a drop of roughly 1 °C for every 300 m of altitude.</p>
<p>This has practical effects on cooking. Boiling is a temperature limit, not a heat limit: the
water cannot get hotter than its boiling point no matter how high the flame. Food cooked in boiling
water therefore cooks more slowly at altitude, and pasta or beans need longer times. Pressure
cookers solve the problem by raising the pressure inside the pot to about 200 kPa, which lifts the
boiling point to roughly 120 °C. Baking recipes are also adjusted, because water evaporates faster
and gases expand more at low pressure.</p>""",
        24,
    ),
    (
        "How does a lithium-ion battery store energy?",
        "<p>What happens chemically when a lithium-ion cell is charged and discharged?</p>",
        """<p>A lithium-ion cell stores energy as the chemical potential difference of lithium between two
electrodes. Neither electrode holds lithium metal; both are host materials into which lithium ions
slide (intercalation).</p>
<h2>The parts</h2>
<ul>
<li><strong>Negative electrode</strong>: usually graphite, which can hold one lithium per six
carbon atoms (LiC<sub>6</sub>).</li>
<li><strong>Positive electrode</strong>: a transition-metal oxide or phosphate such as
LiCoO<sub>2</sub>, LiNi<sub>x</sub>Mn<sub>y</sub>Co<sub>z</sub>O<sub>2</sub> (NMC) or
LiFePO<sub>4</sub>.</li>
<li><strong>Electrolyte</strong>: a lithium salt (LiPF<sub>6</sub>) in organic carbonates. It
conducts ions but not electrons.</li>
<li><strong>Separator</strong>: a porous polymer film that keeps the electrodes apart.</li>
</ul>
<h2>Discharge</h2>
<p>Lithium leaves the graphite as Li<sup>+</sup>, and its electron goes through the external
circuit, doing work. The ion crosses the electrolyte and enters the oxide, where a metal ion is
reduced (Co<sup>4+</sup> to Co<sup>3+</sup> in LiCoO<sub>2</sub>):</p>
<pre><code>negative: LiC6 -&gt; C6 + Li+ + e-
positive: CoO2 + Li+ + e- -&gt; LiCoO2
</code></pre>
<h2>Charge</h2>
<p>The charger forces the reverse: lithium is pulled out of the oxide and pushed back into the
graphite, storing energy again. The cell voltage, about 3.6-3.7 V for cobalt oxide cells, reflects
how much more stable lithium is in the oxide than in the graphite.</p>
<h2>Why cells age</h2>
<p>On the first charges, the electrolyte reacts at the graphite surface and forms a solid
electrolyte interphase (SEI). This layer protects the electrode but consumes lithium, and it keeps
growing slowly, which is one of the main causes of capacity fade.</p>""",
        47,
    ),
]

# Rows that the rules must drop: a short answer, a first-person answer, a low score, a reference
# to other answers.
EXTRA = [
    (2, "Because it is lighter.", 12),
    (
        3,
        "<p>I always use the Henderson-Hasselbalch equation for this, and my students do too. " * 30
        + "</p>",
        15,
    ),
    (4, "<p>Catalysts lower the barrier both ways. " * 40 + "</p>", 3),
    (
        5,
        "<p>As mentioned in the other answer, polarity has several definitions. " * 25 + "</p>",
        11,
    ),
]


def build() -> bytes:
    root = etree.Element("posts")
    post_id = 1
    for title, body, answer, score in QA:
        question_id = post_id
        etree.SubElement(
            root,
            "row",
            Id=str(question_id),
            PostTypeId="1",
            Score=str(score // 2),
            Title=title,
            Body=body,
            Tags="<physical-chemistry>",
            AcceptedAnswerId=str(question_id + 1),
            AnswerCount="1",
        )
        etree.SubElement(
            root,
            "row",
            Id=str(question_id + 1),
            PostTypeId="2",
            ParentId=str(question_id),
            Score=str(score),
            Body=answer,
        )
        post_id += 2
    for question, body, score in EXTRA:
        etree.SubElement(
            root,
            "row",
            Id=str(post_id),
            PostTypeId="2",
            ParentId=str(question * 2 - 1),
            Score=str(score),
            Body=body,
        )
        post_id += 1
    lines = [b'<?xml version="1.0" encoding="utf-8"?>', b"<posts>"]
    lines += [b"  " + etree.tostring(row) for row in root]
    lines.append(b"</posts>")
    return b"\n".join(lines) + b"\n"


if __name__ == "__main__":
    OUT.write_bytes(build())
    print(OUT, OUT.stat().st_size)
