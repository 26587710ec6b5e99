#!/bin/sh
# Print the environment the script was given, one variable a line.
env
