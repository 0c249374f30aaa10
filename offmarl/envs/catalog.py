"""The list of environments offmarl knows. Factories and spec functions are dotted paths, imported only when used."""

from offmarl.envs.registry import register_env

# ---- native numpy environments (the papers' own tasks) -------------------------------------------
register_env("equal_space", "offmarl.envs.equal_space:EqualSpaceEnv",
             "Tseng et al.: n agents spread into an equilateral formation in a bounded arena (continuous)",
             spec="offmarl.envs.equal_space:equal_space_spec")
register_env("fill_in", "offmarl.envs.fill_in:FillInEnv",
             "Tseng et al.: agents with headings fill the cells of a grid; return = own filled - unfilled",
             spec="offmarl.envs.fill_in:fill_in_spec")
register_env("grid_world", "offmarl.envs.grid_world:GridWorldEnv",
             "Tseng et al.: 10x10 map with obstacles; agents collect their own objects and deliver them to the target",
             spec="offmarl.envs.grid_world:grid_world_spec")
register_env("matrix_game", "offmarl.envs.matrix_game:MatrixGameEnv",
             "Jiang & Lu (MABCQ) Table 1: two-agent one-shot matrix game as a two-step MDP",
             spec="offmarl.envs.matrix_game:matrix_game_spec")
register_env("mpe_cn_3ls3l", "offmarl.envs.mpe:cn_3ls3l",
             "SIT: cooperative navigation, 3 seekers / 3 landmarks, partially observable (mpe2 physics)",
             spec="offmarl.envs.mpe:cn_3ls3l_spec")
register_env("mpe_cn_4ls4l", "offmarl.envs.mpe:cn_4ls4l",
             "SIT: cooperative navigation, 4 seekers / 4 landmarks, partially observable (mpe2 physics)",
             spec="offmarl.envs.mpe:cn_4ls4l_spec")
register_env("mpe_pp_3p1p", "offmarl.envs.mpe:pp_3p1p",
             "SIT: predator-prey, 3 predators / 1 heuristic prey, partially observable (mpe2 physics)",
             spec="offmarl.envs.mpe:pp_3p1p_spec")

# ---- adapters around other packages (optional extras) -------------------------------------------------
register_env("highway", "offmarl.envs.highway:make_highway",
             "Tseng et al. App. C: highway-env, 3 controlled cars among IDM/MOBIL traffic; Kinematics observations, "
             "5 meta-actions, per-car reward 25*r_collision + 0.2*r_high_speed (fast=True: highway-fast)",
             source="highway", spec="offmarl.envs.highway:highway_spec")
for _name, _what in (("halfcheetah_2x3", "HalfCheetah 2x3 (SIT HalfCheetah_2l; MABCQ 2 agents)"),
                     ("walker2d_2x3", "Walker2d 2x3 (SIT Walker_2l; MABCQ 2 agents)"),
                     ("hopper_3x1", "Hopper 3x1 (MABCQ 3 agents; observations zero-padded)"),
                     ("ant_2x4", "Ant 2x4 (2 agents)"),
                     ("ant_4x2", "Ant 4x2 (MABCQ 4 agents)")):
    register_env(f"mamujoco_{_name}", f"offmarl.envs.mamujoco:{_name}",
                 f"gymnasium-robotics MaMuJoCo {_what}; state without contact forces, episode_limit 1000 "
                 "(SIT: 200)", source="mamujoco", spec=f"offmarl.envs.mamujoco:{_name}_spec")

# SMAC maps on jaxmarl's SMAX (offmarl.envs.smax). 1c3s5z and 2s_vs_1sc need units SMAX lacks.
SMAX_MAPS: dict[str, str] = {  # the buildable maps (offmarl.envs.smax.SMAC_MAPS) -> what they are
    "2s3z": "2 stalkers + 3 zealots vs the same (Tseng, SIT)",
    "3s5z": "3 stalkers + 5 zealots vs the same (Tseng)",
    "3s5z_vs_3s6z": "3 stalkers + 5 zealots vs 3 stalkers + 6 zealots (Tseng)",
    "8m": "8 marines vs 8 marines (SIT)",
    "8m_vs_9m": "8 marines vs 9 marines (Tseng, DM2 App. B)",
    "5m_vs_6m": "5 marines vs 6 marines (DM2)",
    "10m_vs_11m": "10 marines vs 11 marines (SIT)",
    "3s_vs_3z": "3 stalkers vs 3 zealots (DM2)",
    "3s_vs_4z": "3 stalkers vs 4 zealots (DM2)",
    "3s_vs_5z": "3 stalkers vs 5 zealots (SIT, DM2 App. B)",
}
for _map, _what in SMAX_MAPS.items():
    register_env(f"smac_{_map}", f"offmarl.envs.smax:smac_{_map}",
                 f"SMAC {_map} on SMAX: {_what}; heuristic enemy, SMAC reward (win = 20), info['win']",
                 source="smax", spec=f"offmarl.envs.smax:smac_{_map}_spec")
register_env("smac_1c3s5z", "offmarl.envs.smax:smac_1c3s5z", "SMAC 1c3s5z (SIT): 1 colossus + 3 stalkers + 5 zealots",
             source="smax", unavailable_reason="SMAX has no Colossus unit, so 1c3s5z cannot be built on SMAX "
             "(no substitute is offered)")
register_env("smac_2s_vs_1sc", "offmarl.envs.smax:smac_2s_vs_1sc",
             "SMAC 2s_vs_1sc (SIT): 2 stalkers vs 1 spine crawler",
             source="smax", unavailable_reason="SMAX has no Spine Crawler (a static Zerg building), so 2s_vs_1sc "
             "cannot be built on SMAX (no substitute is offered)")
