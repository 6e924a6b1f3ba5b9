"""Consultations in Slack: intake of uploads, one job per board, queue places, resume after restarts.

intake.py   Upload, Consultant: claim the message with its record (all its photos: one part), run its
            job; text consultations from a button or /matrec ask; DM help and small-talk reactions
job.py      Job, JobRunner: one board from its turn in the queue to its final state and score chart
queue.py    QueueNotices: "queued, n ahead", re-rendered in coalesced batches
resume.py   Resumer: heartbeats, and takes over and resumes consultations whose owner fell silent
thread.py   Thread: reactions, notices and the thread status around a consultation
"""

from bot.consultation.intake import HELP, Consultant, Upload
from bot.consultation.job import JobRunner
from bot.consultation.queue import QueueNotices
from bot.consultation.resume import Resumer

__all__ = ["HELP", "Consultant", "JobRunner", "QueueNotices", "Resumer", "Upload"]
