"""The six material classes, their specialist criteria, and typical property values.

Values are class-level typical values for grounding prompts and for what engineers are shown,
not design allowables. Sources: Engineering ToolBox property tables; Callister & Rethwisch,
Fundamentals of Materials Science and Engineering, appendices B and C; Dowling, Mechanical
Behavior of Materials, table 3.10 (after Ashby 2006); Ashby, Materials Selection in Mechanical
Design ch. 4-5; Autodesk Fusion 360 material library; Xometry and Protolabs material guides.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class MaterialClass(StrEnum):
    """A material class; the declaration order is the order results are shown in."""

    METAL = "metal"
    POLYMER = "polymer"
    CERAMIC = "ceramic"
    COMPOSITE = "composite"
    ELASTOMER = "elastomer"
    WOOD = "wood"


CLASS_ORDER: tuple[MaterialClass, ...] = tuple(MaterialClass)


class Dimension(StrEnum):
    """A comparison axis every branch scores, so the `weighted` strategy can compare classes."""

    PERFORMANCE = "performance"
    ENVIRONMENT = "environment"
    MANUFACTURABILITY = "manufacturability"
    COST = "cost"
    WEIGHT = "weight"


class ClassProfile(BaseModel):
    """What a specialist for one class judges, and the typical numbers it is grounded in."""

    model_config = ConfigDict(frozen=True)

    material: MaterialClass
    label: str
    criteria: tuple[str, ...]
    density_g_cm3: str
    youngs_modulus_gpa: str
    strength_mpa: str
    max_service_temp_c: str
    relative_cost: str
    processes: str
    example_grades: str
    watch_outs: str


PROFILES: dict[MaterialClass, ClassProfile] = {
    MaterialClass.METAL: ClassProfile(
        material=MaterialClass.METAL,
        label="Metal",
        criteria=("strength", "weldability", "corrosion resistance", "cost"),
        density_g_cm3="1.8 (Mg) / 2.7 (Al) / 7.85 (steel) / 8.9 (Cu)",
        youngs_modulus_gpa="45 (Mg) / 69 (Al) / 200 (steel)",
        strength_mpa="yield 130 (p10) / 275 (median) / 1,260 (p90)",
        max_service_temp_c="Al 150-250; carbon steel 500-650; cast iron 230-300",
        relative_cost="carbon steel ~1; 6061 Al ~2x steel; 304 SS ~2-3x 6061",
        processes="CNC machining, sheet metal, casting, forging, metal AM",
        example_grades="6061-T6, 7075-T6, 304 / 316L stainless, A36 / 1045 steel, C360 brass",
        watch_outs="corrosion (galvanic, chloride), fatigue at welds and notches, weight",
    ),
    MaterialClass.POLYMER: ClassProfile(
        material=MaterialClass.POLYMER,
        label="Polymer",
        criteria=("moldability", "weight", "temperature range", "UV resistance"),
        density_g_cm3="0.93 (p10) / 1.18 (median) / 1.63 (p90)",
        youngs_modulus_gpa="0.9 / 2.7 / 6.9 (glass-filled up to ~14)",
        strength_mpa="yield 20 / 48 / 72",
        max_service_temp_c="standard <= 90-100; technical 90-150; PEEK and PTFE ~260",
        relative_cost="PP/PVC ~1.2; PET 1.3; PMMA 3.1; PTFE ~12",
        processes="injection moulding, extrusion, CNC, SLS/MJF/FDM/SLA printing",
        example_grades="PA66-GF30, POM-C, PC, ABS, PP, PEEK",
        watch_outs="creep, strength falls steeply with temperature, UV, moisture uptake (PA)",
    ),
    MaterialClass.CERAMIC: ClassProfile(
        material=MaterialClass.CERAMIC,
        label="Ceramic",
        criteria=("hardness", "brittleness", "thermal resistance", "machinability"),
        density_g_cm3="glass 2.5; alumina 3.8-3.9; SiC 3.1; Si3N4 3.2",
        youngs_modulus_gpa="glass 70-74; alumina 350-372; SiC 393; Si3N4 310",
        strength_mpa="tension: glass ~50, alumina 170-260, Si3N4 450; compression ~10x tension",
        max_service_temp_c="alumina ~1,400-1,500",
        relative_cost="varies widely; machining after firing is costly",
        processes="powder pressing + sintering, slip/tape casting, glass forming, grinding",
        example_grades="96% / 99.5% alumina, Si3N4, SiC, zirconia (Y-TZP), borosilicate glass",
        watch_outs="brittle under impact and tension, thermal shock, costly post-fire machining",
    ),
    MaterialClass.COMPOSITE: ClassProfile(
        material=MaterialClass.COMPOSITE,
        label="Composite",
        criteria=("strength-to-weight", "cost", "manufacturing complexity"),
        density_g_cm3="GFRP 1.2-1.8; CFRP 1.6-1.7",
        youngs_modulus_gpa="GFRP 14-40; CFRP unidirectional 130-142",
        strength_mpa="GFRP 190-870; CFRP unidirectional ~1,700 (along fibre)",
        max_service_temp_c="limited by the matrix: ~80-215",
        relative_cost="E-glass/epoxy prepreg ~28; carbon/epoxy prepreg ~43 (high-modulus to ~330)",
        processes="layup / prepreg, RTM, filament winding, pultrusion, SMC/BMC moulding",
        example_grades="CFRP prepreg (T700/epoxy), GFRP (E-glass/polyester), SMC, G10/FR4",
        watch_outs="anisotropy, delamination under impact, joining and inspection, cost at volume",
    ),
    MaterialClass.ELASTOMER: ClassProfile(
        material=MaterialClass.ELASTOMER,
        label="Elastomer",
        criteria=("flexibility", "durability", "chemical resistance", "temperature range"),
        density_g_cm3="0.90 / 0.93 / 1.25 (silicone)",
        youngs_modulus_gpa="0.002 - 0.010",
        strength_mpa="tensile 7 - 28",
        max_service_temp_c="NBR ~100-120; EPDM ~150; silicone ~200-230",
        relative_cost="low to moderate; silicone higher",
        processes="compression / injection moulding, LSR moulding, extrusion",
        example_grades="EPDM 70 Shore A, NBR, silicone (VMQ), FKM (Viton), TPU",
        watch_outs="compression set, swelling in oils (EPDM) or ozone (NBR), low stiffness",
    ),
    MaterialClass.WOOD: ClassProfile(
        material=MaterialClass.WOOD,
        label="Wood",
        criteria=("availability", "machinability", "aesthetics", "moisture sensitivity"),
        density_g_cm3="0.39 / 0.57 / 0.80",
        youngs_modulus_gpa="7.6 / 11.6 / 13 (along grain)",
        strength_mpa="compression along grain ~50",
        max_service_temp_c="~100-150 (chars above)",
        relative_cost="Douglas fir ~0.6; red oak ~2.8",
        processes="sawing, CNC routing, lamination, steam bending",
        example_grades="birch plywood, white oak, maple, Douglas fir, beech",
        watch_outs="moisture swelling and rot, anisotropy, fire, variability between boards",
    ),
}


def grounding_table() -> str:
    """The Markdown table of typical class values that grounds every prompt."""
    header = (
        "| class | density g/cm3 | Young's modulus GPa | strength MPa | max service temp C "
        "| relative cost (A36 steel = 1) | typical processes |\n|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {p.material.value} | {p.density_g_cm3} | {p.youngs_modulus_gpa} | {p.strength_mpa} "
        f"| {p.max_service_temp_c} | {p.relative_cost} | {p.processes} |"
        for p in PROFILES.values()
    ]
    return "\n".join([header, *rows])
