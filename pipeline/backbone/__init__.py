"""Pretrained backbones: conversion to bert4keras's format and the manifest stages read."""
