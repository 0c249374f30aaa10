"""The list of environments offmarl knows. Factories are dotted paths, imported only when built."""

from offmarl.envs.registry import register_env

# ---- native numpy environments (the papers' own tasks) -------------------------------------------
register_env("equal_space", "offmarl.envs.equal_space:EqualSpaceEnv",
             "Tseng et al.: n agents spread into an equilateral formation in a bounded arena (continuous)")
register_env("fill_in", "offmarl.envs.fill_in:FillInEnv",
             "Tseng et al.: agents with headings fill the cells of a grid; return = own filled - unfilled")
register_env("grid_world", "offmarl.envs.grid_world:GridWorldEnv",
             "Tseng et al.: 10x10 map with obstacles; agents collect their own objects and deliver them to the target")
register_env("matrix_game", "offmarl.envs.matrix_game:MatrixGameEnv",
             "Jiang & Lu (MABCQ) Table 1: two-agent one-shot matrix game as a two-step MDP")
register_env("mpe_cn_3ls3l", "offmarl.envs.mpe:cn_3ls3l",
             "SIT: cooperative navigation, 3 seekers / 3 landmarks, partially observable (mpe2 physics)")
register_env("mpe_cn_4ls4l", "offmarl.envs.mpe:cn_4ls4l",
             "SIT: cooperative navigation, 4 seekers / 4 landmarks, partially observable (mpe2 physics)")
register_env("mpe_pp_3p1p", "offmarl.envs.mpe:pp_3p1p",
             "SIT: predator-prey, 3 predators / 1 heuristic prey, partially observable (mpe2 physics)")
