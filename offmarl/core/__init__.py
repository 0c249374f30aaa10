"""Low-level pieces shared by every stage of the flow: atomic files and locks, seeding, the optimizer.

``offmarl.core`` imports nothing else of offmarl, so data, algorithms, collection, training and the bench
can all use it (DESIGN.md, "Imports in the flow's order").
"""
