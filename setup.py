"""Packaging for lt4rec-tfx: the user code that Beam workers and the Kubeflow image import."""
from setuptools import find_packages, setup

setup(
    name="lt4rec-tfx",
    version="0.1.0",
    description="TFX pipeline for multi-task CTR/CVR rankers with lottery-ticket sparse sharing (LT4REC).",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "modules", "modules.*", "kubeflow", "kubeflow.*"]),
    package_data={"pipeline": ["../schema/*.pbtxt"], "modules": ["*.yaml"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-serving-api==2.16.1",
        "apache-beam[gcp,aws]==2.59.0",
        "tensorflow-io==0.37.1",
        "numpy==1.26.4",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "pytest-xdist", "hypothesis", "moto[s3]", "flask",
                             "flask-cors"]},
    entry_points={"console_scripts": ["lt4rec=pipeline.cli:main"]},
)
